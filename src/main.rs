use clap::Parser;
use handover_receiver::config::{Cli, Forwarding, Settings};
use handover_receiver::{Service, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Cli::parse().settings() {
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
            return ExitCode::FAILURE;
        }
    };
    let service = match Service::build(settings) {
        Ok(service) => service,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match service.run(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            ExitCode::FAILURE
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
