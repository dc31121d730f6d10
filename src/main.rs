use clap::Parser;
use handover_receiver::cli::{Cli, Command, effective_settings};
use handover_receiver::config::{Forwarding, Settings, SettingsArgs};
use handover_receiver::{Service, allocator, keys, log_writer, replay, telemetry};
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of glibc's allocator: an event makes about fifty allocations, and with glibc
/// they were a sixth of the service's instructions (`benches/load/NOTES.md`, sixth round). Built
/// without transparent huge pages (`no_thp`): with them, each thread's first page of heap made
/// 2 MiB resident, and the idle process took 15 MB instead of 8. Asked through
/// [`allocator::Allocator`], which reaches its fast path for word-aligned blocks.
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        None | Some(Command::Serve) => serve(cli.settings).await,
        Some(Command::GenKey) => gen_key(),
        Some(Command::CheckConfig) => check_config(cli.settings),
        Some(Command::Replay(args)) => replay_events(&args).await,
        Some(Command::Healthcheck { url }) => healthcheck(&cli.settings, url).await,
    }
}

async fn healthcheck(args: &SettingsArgs, url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let mut addr = args.listen_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/livez")
    });
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(_) => return ExitCode::FAILURE,
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url}: {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{url}: {}", error.without_url());
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: SettingsArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("handover-receiver: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    announce(&settings);

    let listener = match tokio::net::TcpListener::bind(settings.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %settings.listen_addr, %error, "cannot listen");
            log_writer::flush(LOG_FLUSH);
            return ExitCode::FAILURE;
        }
    };
    let service = match Service::build(settings) {
        Ok(service) => service,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            log_writer::flush(LOG_FLUSH);
            return ExitCode::FAILURE;
        }
    };
    let code = match service.run(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            ExitCode::FAILURE
        }
    };
    log_writer::flush(LOG_FLUSH);
    code
}

/// How long the last log lines may take to be written at exit.
const LOG_FLUSH: Duration = Duration::from_secs(2);

fn gen_key() -> ExitCode {
    match keys::generate() {
        Ok(key) => {
            print!("{}", keys::instructions(&key));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("handover-receiver: no secure random source: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(args: SettingsArgs) -> ExitCode {
    match args.settings() {
        Ok(settings) => {
            for (name, value) in effective_settings(&settings) {
                println!("{name}={value}");
            }
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("handover-receiver: {error}");
            ExitCode::from(2)
        }
    }
}

async fn replay_events(args: &replay::ReplayArgs) -> ExitCode {
    match replay::run(args).await {
        Ok(summary) => {
            println!("replayed {summary}");
            if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("handover-receiver replay: {error}");
            ExitCode::from(2)
        }
    }
}

fn announce(settings: &Settings) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        store = ?settings.store,
        graceMs = settings.end_grace_ms,
        keys = settings.api_keys.len(),
        "starting handover-receiver"
    );
    match &settings.forwarding {
        Forwarding::Shadow => tracing::warn!(
            "SHADOW MODE: handover ends are decided and logged but NOT sent to Cognigy; \
             set FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST=true and HANDOVER_COGNIGY_URL to forward them"
        ),
        Forwarding::Cognigy { format, .. } => {
            tracing::info!(format = ?format, "forwarding handover ends to Cognigy")
        }
    }
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
