//! Test certificates: a CA, and certificates it signs for the pods' names.

/// A CA that signs certificates.
pub type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

/// A CA called `name`. Its name differs from its certificates': OpenSSL (the
/// servers) takes a certificate whose subject is its issuer's for a
/// self-signed one.
pub fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names`, signed by `ca`: (certificate, key), in PEM.
pub fn signed(ca: &Ca, names: Vec<String>) -> (String, String) {
    sign(ca, names, None)
}

/// A certificate for `names`, signed by `ca`, valid from a minute ago for
/// `valid_for`: (certificate, key), in PEM.
pub fn signed_for(ca: &Ca, names: Vec<String>, valid_for: std::time::Duration) -> (String, String) {
    sign(ca, names, Some(valid_for))
}

fn sign(ca: &Ca, names: Vec<String>, valid_for: Option<std::time::Duration>) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mysql-sts pods");
    if let Some(valid_for) = valid_for {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::try_from(valid_for).unwrap();
    }
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}
