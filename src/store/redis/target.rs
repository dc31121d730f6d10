//! Where the Redis state lives, parsed and checked at start-up (and by `check-config`), so that a
//! wrong URL or an unreadable certificate stops the service with the variable's name instead of
//! failing every event later (`docs/contract.md` §9.1).
//!
//! - `redis://`, `rediss://`, `redis+unix://`, `unix://`: one server.
//! - the same, comma-separated, with `HANDOVER_REDIS_CLUSTER=true`: Redis Cluster seeds.
//! - `redis+sentinel://[:password@]host:port,host:port/<master name>[/<db>]` (`rediss+sentinel`
//!   for TLS to the data nodes): the primary the Sentinels name, followed across failovers.

use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use thiserror::Error;

pub const CA_FILE_ENV: &str = "HANDOVER_REDIS_CA_FILE";
pub const CLIENT_CERT_FILE_ENV: &str = "HANDOVER_REDIS_CLIENT_CERT_FILE";
pub const CLIENT_KEY_FILE_ENV: &str = "HANDOVER_REDIS_CLIENT_KEY_FILE";

const SENTINEL_SCHEMES: [(&str, bool); 2] =
    [("redis+sentinel://", false), ("rediss+sentinel://", true)];

/// The Redis deployment the service talks to. No `Debug`: URLs and keys are secrets.
#[derive(Clone)]
pub struct RedisTarget {
    pub topology: Topology,
    /// Private CA and client certificate, when configured.
    pub tls: Option<TlsFiles>,
}

#[derive(Clone)]
pub enum Topology {
    /// One server: a primary, or an address that always leads to the primary.
    Single(String),
    /// Redis Cluster: the URLs of one or more seed nodes.
    Cluster(Vec<String>),
    Sentinel(SentinelTarget),
}

#[derive(Clone)]
pub struct SentinelTarget {
    /// `host:port` of each Sentinel.
    pub sentinels: Vec<(String, u16)>,
    pub master_name: String,
    /// The data nodes' password (the Sentinels are asked without one).
    pub password: Option<String>,
    pub db: i64,
    /// TLS to the data nodes.
    pub tls: bool,
}

/// PEM contents of the configured files, already checked to parse.
#[derive(Clone)]
pub struct TlsFiles {
    /// Trusted besides the system's roots.
    pub ca: Option<Vec<u8>>,
    pub client: Option<ClientCertificate>,
}

#[derive(Clone)]
pub struct ClientCertificate {
    pub certificate: Vec<u8>,
    pub key: Vec<u8>,
}

/// Why the Redis settings are refused. Never carries the URL (it may hold a password).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("HANDOVER_STORE is not a valid Redis URL ({0})")]
    Url(String),
    #[error(
        "HANDOVER_STORE: a Sentinel URL is redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/<db>] ({0})"
    )]
    Sentinel(&'static str),
    #[error("HANDOVER_REDIS_CLUSTER=true does not go with a Sentinel URL")]
    ClusterAndSentinel,
    #[error("{name} cannot be read ({problem})")]
    Unreadable { name: &'static str, problem: String },
    #[error("{name} {problem}")]
    Unparsable { name: &'static str, problem: String },
    #[error("{CLIENT_CERT_FILE_ENV} and {CLIENT_KEY_FILE_ENV} go together: set both or neither")]
    HalfClientCertificate,
}

/// The certificate files as given (each optional).
#[derive(Debug, Clone, Default)]
pub struct TlsPaths<'a> {
    pub ca: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

impl RedisTarget {
    /// One server at `url`, without certificate files (tests and tools).
    pub fn single(url: impl Into<String>) -> Self {
        Self {
            topology: Topology::Single(url.into()),
            tls: None,
        }
    }

    pub fn parse(url: &str, cluster: bool, paths: &TlsPaths<'_>) -> Result<Self, TargetError> {
        let topology = match SENTINEL_SCHEMES
            .iter()
            .find_map(|(scheme, tls)| Some((url.strip_prefix(scheme)?, *tls)))
        {
            Some(_) if cluster => return Err(TargetError::ClusterAndSentinel),
            Some((rest, tls)) => Topology::Sentinel(parse_sentinel(rest, tls)?),
            None if cluster => {
                let seeds: Vec<String> = url
                    .split(',')
                    .map(|seed| seed.trim().to_owned())
                    .filter(|seed| !seed.is_empty())
                    .collect();
                for seed in &seeds {
                    check_url(seed)?;
                }
                if seeds.is_empty() {
                    return Err(TargetError::Url("no seed node".into()));
                }
                Topology::Cluster(seeds)
            }
            None => {
                check_url(url)?;
                Topology::Single(url.to_owned())
            }
        };
        Ok(Self {
            topology,
            tls: TlsFiles::read(paths)?,
        })
    }

    /// What kind of deployment this is, for logs and `check-config` (no address, no secret).
    pub fn kind(&self) -> &'static str {
        match self.topology {
            Topology::Single(_) => "redis",
            Topology::Cluster(_) => "redis cluster",
            Topology::Sentinel(_) => "redis sentinel",
        }
    }

    /// The certificates for the redis crate, when files are configured: the CA file is added to
    /// the system's roots, not put in their place.
    pub fn certificates(&self) -> Option<TlsCertificates> {
        let files = self.tls.as_ref()?;
        Some(TlsCertificates {
            client_tls: files.client.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.certificate.clone(),
                client_key: c.key.clone(),
            }),
            root_cert: files.ca.as_ref().map(|ca| system_roots_and(ca)),
        })
    }
}

fn check_url(url: &str) -> Result<(), TargetError> {
    url.into_connection_info()
        .map(|_| ())
        .map_err(|error| TargetError::Url(format!("{:?}", error.kind())))
}

fn parse_sentinel(rest: &str, tls: bool) -> Result<SentinelTarget, TargetError> {
    let (credentials, rest) = match rest.rsplit_once('@') {
        Some((credentials, rest)) => (Some(credentials), rest),
        None => (None, rest),
    };
    let password = credentials
        .map(|c| c.split_once(':').map_or(c, |(_, password)| password))
        .filter(|p| !p.is_empty())
        .map(|p| percent_decode(p).ok_or(TargetError::Sentinel("bad percent-encoding")))
        .transpose()?;
    let mut parts = rest.split('/');
    let hosts = parts.next().unwrap_or_default();
    let master_name = parts
        .next()
        .filter(|name| !name.is_empty())
        .ok_or(TargetError::Sentinel("no master name"))?
        .to_owned();
    let db = match parts.next().filter(|db| !db.is_empty()) {
        Some(db) => db
            .parse()
            .map_err(|_| TargetError::Sentinel("the database is not a number"))?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(TargetError::Sentinel("too many path segments"));
    }
    let sentinels = hosts
        .split(',')
        .map(|host| {
            let (name, port) = host
                .trim()
                .rsplit_once(':')
                .ok_or(TargetError::Sentinel("a Sentinel lacks its port"))?;
            let port = port
                .parse()
                .map_err(|_| TargetError::Sentinel("a Sentinel's port is not a number"))?;
            if name.is_empty() {
                return Err(TargetError::Sentinel("a Sentinel lacks its host"));
            }
            Ok((name.trim_matches(['[', ']']).to_owned(), port))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SentinelTarget {
        sentinels,
        master_name,
        password,
        db,
        tls,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SentinelTarget {
    pub fn addresses(&self) -> Vec<ConnectionAddr> {
        self.sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port))
            .collect()
    }
}

impl TlsFiles {
    fn read(paths: &TlsPaths<'_>) -> Result<Option<Self>, TargetError> {
        let ca = paths
            .ca
            .map(|path| {
                let pem = read(CA_FILE_ENV, path)?;
                let count = certificates(CA_FILE_ENV, &pem)?;
                if count == 0 {
                    return Err(unparsable(CA_FILE_ENV, "holds no PEM certificate"));
                }
                Ok(pem)
            })
            .transpose()?;
        let client = match (paths.client_cert, paths.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let certificate = read(CLIENT_CERT_FILE_ENV, cert)?;
                if certificates(CLIENT_CERT_FILE_ENV, &certificate)? == 0 {
                    return Err(unparsable(CLIENT_CERT_FILE_ENV, "holds no PEM certificate"));
                }
                let key = read(CLIENT_KEY_FILE_ENV, key)?;
                let parsed_key = PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|_| unparsable(CLIENT_KEY_FILE_ENV, "holds no PEM private key"))?;
                usable_client_certificate(&certificate, parsed_key)?;
                Some(ClientCertificate { certificate, key })
            }
            _ => return Err(TargetError::HalfClientCertificate),
        };
        Ok((ca.is_some() || client.is_some()).then_some(Self { ca, client }))
    }
}

/// What TLS will make of the pair: rustls refuses, say, an X.509 v1 certificate or a key that
/// is not the certificate's, and that is better said at start-up than on every connection.
fn usable_client_certificate(
    certificate: &[u8],
    key: PrivateKeyDer<'static>,
) -> Result<(), TargetError> {
    let chain = CertificateDer::pem_slice_iter(certificate)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            unparsable(
                CLIENT_CERT_FILE_ENV,
                "holds a PEM block that does not parse",
            )
        })?;
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(|_| ())
        .map_err(|error| {
            unparsable(
                CLIENT_CERT_FILE_ENV,
                &format!("and {CLIENT_KEY_FILE_ENV} are not a usable pair ({error})"),
            )
        })
}

fn read(name: &'static str, path: &Path) -> Result<Vec<u8>, TargetError> {
    std::fs::read(path).map_err(|error| TargetError::Unreadable {
        name,
        problem: error.kind().to_string(),
    })
}

fn unparsable(name: &'static str, problem: &str) -> TargetError {
    TargetError::Unparsable {
        name,
        problem: problem.to_owned(),
    }
}

/// How many certificates a PEM text holds; an error if one of them does not parse.
fn certificates(name: &'static str, pem: &[u8]) -> Result<usize, TargetError> {
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate =
            certificate.map_err(|_| unparsable(name, "holds a PEM block that does not parse"))?;
        // Trust anchors must be real certificates, not just base64.
        webpki_anchor_check(&certificate)
            .map_err(|_| unparsable(name, "holds a certificate that does not parse"))?;
        count += 1;
    }
    Ok(count)
}

fn webpki_anchor_check(certificate: &CertificateDer<'_>) -> Result<(), ()> {
    let mut store = rustls::RootCertStore::empty();
    store.add(certificate.clone()).map_err(|_| ())
}

/// The system's trusted roots (as rustls-native-certs finds them, honouring `SSL_CERT_FILE`)
/// followed by `extra`, as one PEM text: the redis crate's root list replaces the system's.
fn system_roots_and(extra: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut pem = Vec::new();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let body = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem.extend_from_slice(extra);
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<RedisTarget, TargetError> {
        RedisTarget::parse(url, false, &TlsPaths::default())
    }

    #[test]
    fn a_sentinel_url_names_its_sentinels_master_and_database() {
        let target =
            parse("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b:26380/handover/2").unwrap();
        let Topology::Sentinel(sentinel) = target.topology else {
            panic!("not a Sentinel target");
        };
        assert_eq!(
            sentinel.sentinels,
            [("10.0.0.1".into(), 26379), ("sentinel-b".into(), 26380)]
        );
        assert_eq!(sentinel.master_name, "handover");
        assert_eq!(sentinel.password.as_deref(), Some("s@cret"));
        assert_eq!(sentinel.db, 2);
        assert!(!sentinel.tls);
        let Topology::Sentinel(tls) = parse("rediss+sentinel://s:26379/m").unwrap().topology else {
            panic!("not a Sentinel target");
        };
        assert!(tls.tls && tls.password.is_none() && tls.db == 0);
    }

    #[test]
    fn broken_sentinel_urls_are_refused_without_echoing_them() {
        for url in [
            "redis+sentinel://:pw@host:26379",
            "redis+sentinel://:pw@host/master",
            "redis+sentinel://:pw@host:port/master",
            "redis+sentinel://:pw@host:26379/master/db",
            "redis+sentinel://:pw@host:26379/master/0/extra",
        ] {
            let error = parse(url).err().expect(url).to_string();
            assert!(error.contains("HANDOVER_STORE"), "{error}");
            assert!(!error.contains("pw"), "{error}");
        }
        assert_eq!(
            RedisTarget::parse("redis+sentinel://h:1/m", true, &TlsPaths::default())
                .err()
                .unwrap(),
            TargetError::ClusterAndSentinel
        );
    }

    #[test]
    fn certificate_files_are_read_and_checked_at_start() {
        let dir = std::env::temp_dir().join(format!("handover-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.join("missing.pem");
        for (path, expected) in [
            (&missing, "HANDOVER_REDIS_CA_FILE cannot be read"),
            (&garbage, "HANDOVER_REDIS_CA_FILE holds no PEM certificate"),
            (
                &broken,
                "HANDOVER_REDIS_CA_FILE holds a certificate that does not parse",
            ),
        ] {
            let paths = TlsPaths {
                ca: Some(path),
                ..TlsPaths::default()
            };
            let error = RedisTarget::parse("rediss://h:6380", false, &paths)
                .err()
                .unwrap()
                .to_string();
            assert!(error.starts_with(expected), "{error}");
        }
        let half = TlsPaths {
            client_cert: Some(&garbage),
            ..TlsPaths::default()
        };
        assert_eq!(
            RedisTarget::parse("rediss://h:6380", false, &half).err(),
            Some(TargetError::HalfClientCertificate)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
