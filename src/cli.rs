//! The command line: subcommands around the settings of `config.rs`. `check-config` prints the
//! settings in the order and with the names `--help` has, taken from the same definitions, so the
//! two cannot drift apart.

use crate::config::{Settings, SettingsArgs};
use clap::{CommandFactory, Parser};

/// Receives Genesys Cloud conversation events from Amazon EventBridge and tells Cognigy.AI when
/// a handover to human agents has really ended.
#[derive(Parser)]
#[command(name = "handover-receiver", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// What to do; `serve` when none is given. The settings apply to `serve` and `check-config`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Generate an API key for the EventBridge connection and print how to store it.
    GenKey,
    /// Validate the settings from the environment and flags; print them with secrets masked.
    CheckConfig,
    /// Exit 0 when the local service answers GET /livez (for images without curl).
    Healthcheck {
        /// URL to check; default: /livez on HANDOVER_LISTEN_ADDR (0.0.0.0 read as 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
    },
    /// POST events from files (single events, JSON lines, or an SQS dead-letter queue dump) to a
    /// receiver, rate-limited, and print a summary.
    Replay(crate::replay::ReplayArgs),
}

/// The environment variable of every setting, in `--help`'s order.
pub fn setting_names() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// `check-config`'s lines: every setting `--help` lists, with its effective value (secrets
/// masked, URLs without credentials or query).
pub fn effective_settings(settings: &Settings) -> Vec<(String, String)> {
    let described = settings.describe();
    setting_names()
        .into_iter()
        .map(|name| {
            let value = described
                .iter()
                .find(|(described, _)| *described == name)
                .map_or_else(|| "<not described>".to_owned(), |(_, value)| value.clone());
            (name, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Cli::try_parse_from(["handover-receiver", "--api-key", "a-key-of-twelve"])
            .unwrap()
            .settings
            .settings()
            .unwrap()
    }

    /// `check-config` and `--help` come from the same definitions: every setting is described,
    /// and nothing is described that `--help` does not list.
    #[test]
    fn check_config_describes_exactly_the_settings_help_lists() {
        let names = setting_names();
        assert!(names.len() >= 30, "{names:?}");
        let described: Vec<&str> = settings()
            .describe()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        for name in &names {
            assert!(
                described.contains(&name.as_str()),
                "check-config does not describe {name}"
            );
        }
        for name in &described {
            assert!(
                names.iter().any(|n| n == name),
                "check-config describes {name}, --help does not list it"
            );
        }
        assert!(
            effective_settings(&settings())
                .iter()
                .all(|(_, value)| value != "<not described>")
        );
    }
}
