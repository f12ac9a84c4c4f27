//! Delivery destinations. `record` (the default) stores the delivery in the
//! engine's outbox, queryable through the data-plane API. `webhook`
//! destinations are *named* in the operator's configuration; a step refers to a
//! name, never to a URL. Webhook deliveries wait in the outbox as `pending`
//! (held, cancelled and released by the lifecycle) until the sender
//! (`webhook.rs`, run by the operator) posts them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

/// Name of the built-in destination that records deliveries in the store.
pub const RECORD: &str = "record";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDestination {
    pub url: String,
    /// Requests per second; `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Path of a file holding credentials (e.g. a bearer token), read by the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

/// The operator's destination allow-list: name -> webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationConfig {
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookDestination>,
}

impl DestinationConfig {
    /// Validates the configuration itself (URLs are http(s), names are not `record`).
    pub fn validate(&self) -> Result<()> {
        for (name, w) in &self.webhooks {
            if name == RECORD || name.is_empty() {
                return Err(EngineError::InvalidConfig(format!(
                    "webhook name {name:?} is reserved or empty"
                )));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return Err(EngineError::InvalidConfig(format!(
                    "webhook {name:?}: url must be http(s), got {:?}",
                    w.url
                )));
            }
            if w.rate_limit == Some(0) {
                return Err(EngineError::InvalidConfig(format!(
                    "webhook {name:?}: rateLimit must be positive"
                )));
            }
        }
        Ok(())
    }

    /// Checks a step's destination: `record` or a configured webhook name.
    pub fn check(&self, step: &str, channel: &str, destination: &str) -> Result<()> {
        let _ = channel;
        if destination == RECORD || self.webhooks.contains_key(destination) {
            Ok(())
        } else {
            Err(EngineError::UnknownDestination {
                step: step.to_string(),
                name: destination.to_string(),
            })
        }
    }

    pub fn is_webhook(&self, destination: &str) -> bool {
        destination != RECORD && self.webhooks.contains_key(destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_destination_is_rejected() {
        let mut c = DestinationConfig::default();
        assert!(c.check("s", "email", "record").is_ok());
        assert!(c.check("s", "webhook", "crm").is_err());
        c.webhooks.insert(
            "crm".into(),
            WebhookDestination {
                url: "https://crm.example/hook".into(),
                rate_limit: Some(10),
                credentials_file: None,
            },
        );
        assert!(c.validate().is_ok());
        assert!(c.check("s", "webhook", "crm").is_ok());
        c.webhooks.insert(
            "bad".into(),
            WebhookDestination {
                url: "file:///etc/passwd".into(),
                rate_limit: None,
                credentials_file: None,
            },
        );
        assert!(c.validate().is_err());
    }
}
