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

/// [`decrypt_aes128_cbc`] for a body read from `encrypted` (`length` bytes) and written to
/// `plain` as it goes, one window at a time: a spilled segment is never whole in memory.
/// Returns the plain length.
pub fn decrypt_aes128_cbc_stream(
    key: &[u8; 16],
    initialization_vector: &[u8; 16],
    encrypted: &mut dyn std::io::Read,
    length: u64,
    plain: &mut dyn std::io::Write,
) -> Result<u64, StreamDecryptionError> {
    use aes::cipher::generic_array::GenericArray;
    if !length.is_multiple_of(16) || length == 0 {
        return Err(StreamDecryptionError::Decryption(
            DecryptionError::NotBlockAligned {
                length: usize::try_from(length).unwrap_or(usize::MAX),
            },
        ));
    }
    let mut decryptor = Aes128CbcDecryptor::new(key.into(), initialization_vector.into());
    let mut remaining = length;
    let mut window = vec![0u8; 256 * 1024];
    let mut written: u64 = 0;
    while remaining > 0 {
        let take = usize::try_from(remaining.min(window.len() as u64)).unwrap_or(window.len());
        let chunk = window
            .get_mut(..take)
            .ok_or(StreamDecryptionError::Decryption(
                DecryptionError::BadPadding,
            ))?;
        encrypted.read_exact(chunk)?;
        for block in chunk.chunks_exact_mut(16) {
            decryptor.decrypt_block_mut(GenericArray::from_mut_slice(block));
        }
        remaining -= take as u64;
        let keep = if remaining == 0 {
            // PKCS#7: the last byte says how many bytes of padding end the body.
            let padding = usize::from(*chunk.last().unwrap_or(&0));
            let padding_is_valid = (1..=16).contains(&padding)
                && chunk.len() >= padding
                && chunk[chunk.len() - padding..]
                    .iter()
                    .all(|byte| usize::from(*byte) == padding);
            if !padding_is_valid {
                return Err(StreamDecryptionError::Decryption(
                    DecryptionError::BadPadding,
                ));
            }
            chunk.len() - padding
        } else {
            chunk.len()
        };
        plain.write_all(&chunk[..keep])?;
        written += keep as u64;
    }
    Ok(written)
}

/// Why [`decrypt_aes128_cbc_stream`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamDecryptionError {
    #[error(transparent)]
    Decryption(#[from] DecryptionError),
    #[error("reading or writing the body failed: {0}")]
    Io(#[from] std::io::Error),
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

    #[test]
    fn streaming_decryption_matches_the_whole_body_one() {
        let key = [3u8; 16];
        let vector = initialization_vector_from_media_sequence(77);
        for plain_length in [0usize, 15, 16, 300_000, 262_144] {
            let plain: Vec<u8> = (0..plain_length).map(|index| (index % 251) as u8).collect();
            let encrypted = Aes128CbcEncryptor::new((&key).into(), (&vector).into())
                .encrypt_padded_vec_mut::<Pkcs7>(&plain);
            let mut output = Vec::new();
            let length = decrypt_aes128_cbc_stream(
                &key,
                &vector,
                &mut encrypted.as_slice(),
                encrypted.len() as u64,
                &mut output,
            )
            .expect("decrypts");
            assert_eq!(length, plain_length as u64);
            assert_eq!(output, plain);
            let mut ignored = Vec::new();
            assert!(
                decrypt_aes128_cbc_stream(
                    &[4u8; 16],
                    &vector,
                    &mut encrypted.as_slice(),
                    encrypted.len() as u64,
                    &mut ignored,
                )
                .is_err()
                    || plain_length == 0
            );
        }
    }
}
