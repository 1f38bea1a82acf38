//! AES-128 (CBC, PKCS#7) segment decryption, RFC 8216 §5.2.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};

type Aes128CbcDecryptor = cbc::Decryptor<aes::Aes128>;

/// The IV of a segment without an explicit `IV` attribute: its media sequence number as a
/// 128-bit big-endian integer.
pub fn initialization_vector_from_media_sequence(media_sequence: u64) -> [u8; 16] {
    let mut vector = [0u8; 16];
    vector[8..].copy_from_slice(&media_sequence.to_be_bytes());
    vector
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptionError {
    #[error("the encrypted body is {length} bytes, not a multiple of 16")]
    NotBlockAligned { length: usize },
    #[error("the padding is invalid: wrong key or IV, or a damaged segment")]
    BadPadding,
}

/// Decrypts one AES-128-CBC segment body.
pub fn decrypt_aes128_cbc(
    key: &[u8; 16],
    initialization_vector: &[u8; 16],
    encrypted: &[u8],
) -> Result<Vec<u8>, DecryptionError> {
    if !encrypted.len().is_multiple_of(16) {
        return Err(DecryptionError::NotBlockAligned {
            length: encrypted.len(),
        });
    }
    Aes128CbcDecryptor::new(key.into(), initialization_vector.into())
        .decrypt_padded_vec_mut::<Pkcs7>(encrypted)
        .map_err(|_| DecryptionError::BadPadding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    type Aes128CbcEncryptor = cbc::Encryptor<aes::Aes128>;

    #[test]
    fn round_trip_with_sequence_iv() {
        let key = [7u8; 16];
        let vector = initialization_vector_from_media_sequence(1234);
        assert_eq!(&vector[..8], &[0u8; 8]);
        let plain = b"a transport stream packet would be 188 bytes".to_vec();
        let encrypted = Aes128CbcEncryptor::new((&key).into(), (&vector).into())
            .encrypt_padded_vec_mut::<Pkcs7>(&plain);
        assert_eq!(decrypt_aes128_cbc(&key, &vector, &encrypted), Ok(plain));
        let wrong_key = [8u8; 16];
        assert!(decrypt_aes128_cbc(&wrong_key, &vector, &encrypted).is_err());
        assert_eq!(
            decrypt_aes128_cbc(&key, &vector, &encrypted[..15]),
            Err(DecryptionError::NotBlockAligned { length: 15 })
        );
    }
}
