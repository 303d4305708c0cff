//! Partner keys: the config holds only `sha256:<hex>` of each key; a presented key is hashed and
//! compared with every configured hash in constant time.

use aws_lc_rs::digest;

const PREFIX: &str = "sha256:";

/// `sha256:<64 lowercase hex>` -> the 32 bytes.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(PREFIX)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub fn hash(key: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The config line for a key's hash.
pub fn hash_line(key: &str) -> String {
    format!("{PREFIX}{}", hex(&hash(key)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which of `hashes` the key matches (its index), comparing with every hash in constant time.
pub fn check(key: &str, hashes: &[[u8; 32]]) -> Option<usize> {
    let h = hash(key);
    let mut found = None;
    for (i, known) in hashes.iter().enumerate() {
        let diff = known.iter().zip(&h).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if std::hint::black_box(diff) == 0 {
            found = Some(i);
        }
    }
    found
}

/// A fresh key: 32 random bytes from the system's CSPRNG, as 64 hex digits prefixed `siar_`.
pub fn new_key() -> Result<String, String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "the system random source failed".to_string())?;
    Ok(format!("siar_{}", hex(&bytes)))
}

/// A short, non-secret label of a key for logs and metrics: the first 8 hex digits of its hash.
pub fn label(hash: &[u8; 32]) -> String {
    hex(&hash[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_and_check() {
        let key = new_key().expect("key");
        assert!(key.starts_with("siar_") && key.len() == 69);
        assert_ne!(new_key().expect("key"), key);
        let line = hash_line(&key);
        let h = parse_hash(&line).expect("parses");
        // echo -n abc | sha256sum
        assert_eq!(hash_line("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(check(&key, &[hash("other"), h]), Some(1));
        assert_eq!(check("wrong", &[h]), None);
        assert_eq!(parse_hash("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"), None);
        assert_eq!(parse_hash("ba7816bf"), None);
    }
}
