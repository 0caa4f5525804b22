//! The key algorithms the provider generates and accepts.

use rcgen::{KeyPair, SignatureAlgorithm};

use super::PkiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa4096,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::Ed25519,
    ];

    /// The name users write in configuration.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA_P256",
            KeyAlgorithm::EcdsaP384 => "ECDSA_P384",
            KeyAlgorithm::Rsa2048 => "RSA_2048",
            KeyAlgorithm::Rsa4096 => "RSA_4096",
            KeyAlgorithm::Ed25519 => "ED25519",
        }
    }

    pub fn parse(name: &str) -> Option<KeyAlgorithm> {
        KeyAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The accepted names, for diagnostics.
    pub fn names() -> String {
        KeyAlgorithm::ALL
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn signature(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    pub fn generate(self) -> Result<KeyPair, PkiError> {
        let key = match self {
            KeyAlgorithm::Rsa2048 => {
                KeyPair::generate_rsa_for(self.signature(), rcgen::RsaKeySize::_2048)?
            }
            KeyAlgorithm::Rsa4096 => {
                KeyPair::generate_rsa_for(self.signature(), rcgen::RsaKeySize::_4096)?
            }
            _ => KeyPair::generate_for(self.signature())?,
        };
        Ok(key)
    }

    /// The algorithm of an existing key; RSA sizes are told apart by the
    /// length of the public key.
    pub fn of(key: &KeyPair) -> Option<KeyAlgorithm> {
        let alg = key.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyAlgorithm::EcdsaP256)
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(KeyAlgorithm::EcdsaP384)
        } else if alg == &rcgen::PKCS_ED25519 {
            Some(KeyAlgorithm::Ed25519)
        } else if key.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            match key.public_key_raw().len() {
                n if n > 400 => Some(KeyAlgorithm::Rsa4096),
                n if n > 200 => Some(KeyAlgorithm::Rsa2048),
                _ => None,
            }
        } else {
            None
        }
    }
}

/// Parses a PEM private key (PKCS#8, SEC1 or PKCS#1).
pub fn parse_key(pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|e| PkiError(format!("not a valid PEM private key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::parse(alg.name()), Some(alg));
        }
        assert_eq!(KeyAlgorithm::parse("DSA"), None);
    }

    #[test]
    fn generated_keys_are_recognised() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = alg.generate().unwrap();
            let parsed = parse_key(&key.serialize_pem()).unwrap();
            assert_eq!(KeyAlgorithm::of(&parsed), Some(alg));
        }
    }
}
