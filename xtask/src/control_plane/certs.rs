//! Certificates for the local control plane: a CA, the apiserver's serving certificate,
//! client certificates and the service-account signing key. Generated fresh for every run;
//! nothing is committed.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::ControlPlaneError;

const CA_COMMON_NAME: &str = "journey-operator local CA";

/// PEM files of one client identity.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<(), ControlPlaneError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| ControlPlaneError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

fn read(dir: &Path, name: &str) -> Result<String, ControlPlaneError> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|source| ControlPlaneError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}

/// Writes `ca.crt`, `ca.key`, `apiserver.crt/.key`, `admin.crt/.key`, `sa.key`, `sa.pub`.
/// `address` is where the apiserver listens; it joins the serving certificate's names.
pub fn generate_all(dir: &Path, address: IpAddr) -> Result<(), ControlPlaneError> {
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params().self_signed(&ca_key)?;
    write(dir, "ca.crt", &ca_cert.pem())?;
    write(dir, "ca.key", &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params(), ca_key);

    let serving_key = KeyPair::generate()?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "10.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ];
    if !address.is_loopback() {
        names.push(address.to_string());
    }
    let mut serving = CertificateParams::new(names)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;
    write(dir, "apiserver.crt", &serving_cert.pem())?;
    write(dir, "apiserver.key", &serving_key.serialize_pem())?;

    let admin = sign_client(&issuer, "journey-admin", Some("system:masters"))?;
    write(dir, "admin.crt", &admin.cert_pem)?;
    write(dir, "admin.key", &admin.key_pem)?;

    let sa_key = KeyPair::generate()?;
    write(dir, "sa.key", &sa_key.serialize_pem())?;
    write(dir, "sa.pub", &sa_key.public_key_pem())?;
    Ok(())
}

/// Writes a fresh CA (`ca.crt`) and a serving certificate it signed for `localhost` and
/// `127.0.0.1` (`tls.crt`, `tls.key`) into `dir`: what a local `journey-operator engine` or data
/// plane serves TLS with in tests and benchmarks.
pub fn write_serving_certificates(dir: &Path) -> Result<(), ControlPlaneError> {
    let ca_key = KeyPair::generate()?;
    let ca = ca_params().self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    write(dir, "ca.crt", &ca.pem())?;
    write(dir, "tls.crt", &cert.pem())?;
    write(dir, "tls.key", &key.serialize_pem())
}

fn sign_client(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<ClientCert, ControlPlaneError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, user);
    // The apiserver reads groups from O entries; rcgen keeps one entry per attribute type.
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, issuer)?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Mints a client certificate for `user`, member of `group`, signed by the CA in `dir`. Tests use it
/// to act as identities RBAC knows nothing about, or as members of a group.
pub fn mint_client_cert(
    dir: &Path,
    user: &str,
    group: Option<&str>,
) -> Result<ClientCert, ControlPlaneError> {
    let ca_key = KeyPair::from_pem(&read(dir, "ca.key")?)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    sign_client(&issuer, user, group)
}
