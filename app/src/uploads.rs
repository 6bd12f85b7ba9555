//! Book covers: PNG or JPEG images only (decoded, dimensions bounded), a size limit, random names,
//! the shared directory.

use std::path::Path;

/// Why a cover was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoverError {
    /// Over the limit (`BOOKSTORE_MAX_UPLOAD_MB`), in MiB.
    #[error("the cover is larger than {0} MiB")]
    TooLarge(u32),
    /// Not a PNG or JPEG image that decodes.
    #[error("the cover must be a PNG or JPEG image")]
    NotAnImage,
    /// Wider or taller than [`MAX_SIDE`].
    #[error("the cover is larger than {MAX_SIDE} × {MAX_SIDE} pixels")]
    TooManyPixels,
    /// The client file name tries to leave the directory or holds odd characters.
    #[error("the cover's file name is not acceptable")]
    BadName,
}

/// The image kind by magic bytes: its file extension.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("webp")
    } else {
        None
    }
}

/// Checks a client-supplied file name: no path separators, no `..`, no control characters.
pub fn check_client_name(name: &str) -> Result<(), CoverError> {
    if name.len() > 255
        || name.contains(['/', '\\'])
        || name.contains("..")
        || name.chars().any(|c| c.is_control())
    {
        return Err(CoverError::BadName);
    }
    Ok(())
}

/// Largest width and height of a cover, in pixels.
pub const MAX_SIDE: u32 = 4096;

/// Decodes the whole image (so a valid signature followed by garbage is refused) within
/// [`MAX_SIDE`] and a bounded allocation. CPU-bound: call it on the blocking pool.
pub fn decode_check(data: &[u8]) -> Result<(), CoverError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .map_err(|_| CoverError::NotAnImage)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(u64::from(MAX_SIDE) * u64::from(MAX_SIDE) * 4 + 1024 * 1024);
    reader.limits(limits);
    match reader.decode() {
        Ok(_) => Ok(()),
        Err(image::ImageError::Limits(_)) => Err(CoverError::TooManyPixels),
        Err(_) => Err(CoverError::NotAnImage),
    }
}

/// Validates a cover of at most `max_mb` MiB and returns its extension.
pub fn validate(
    client_name: Option<&str>,
    data: &[u8],
    max_mb: u32,
) -> Result<&'static str, CoverError> {
    if let Some(n) = client_name {
        check_client_name(n)?;
    }
    if data.len() > max_mb as usize * 1024 * 1024 {
        return Err(CoverError::TooLarge(max_mb));
    }
    match sniff(data) {
        Some(ext @ ("png" | "jpg")) => Ok(ext),
        _ => Err(CoverError::NotAnImage),
    }
}

/// True for names this shop generates (32 hex characters and an image extension).
pub fn is_stored_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((stem, ext)) => {
            stem.len() == 32
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && matches!(ext, "png" | "jpg" | "gif" | "webp")
        }
        None => false,
    }
}

/// Writes the cover under a random name (temp file + rename, safe on NFS) and returns the name.
pub async fn store(dir: &Path, ext: &str, data: &[u8]) -> std::io::Result<String> {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let name = format!("{}.{ext}", crate::auth::hex(&b));
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, dir.join(&name)).await?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_and_names() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("png"));
        assert_eq!(sniff(b"<?php echo 1;"), None);
        assert_eq!(
            validate(Some("../../etc/passwd.png"), b"\x89PNG\r\n\x1a\n", 2),
            Err(CoverError::BadName)
        );
        assert_eq!(
            validate(Some("a.png"), &vec![0xFF; 2 * 1024 * 1024 + 1], 2),
            Err(CoverError::TooLarge(2))
        );
        assert_eq!(
            validate(Some("a.gif"), b"GIF89a....", 2),
            Err(CoverError::NotAnImage)
        );
        assert_eq!(validate(Some("a.png"), b"\x89PNG\r\n\x1a\n", 2), Ok("png"));
        assert!(is_stored_name("0123456789abcdef0123456789abcdef.png"));
        assert!(!is_stored_name("../0123456789abcdef0123456789abcd.png"));
        assert!(!is_stored_name("0123456789abcdef0123456789abcdef.php"));
    }

    fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(width, height)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn covers_are_decoded_with_bounded_dimensions() {
        assert_eq!(
            decode_check(&encoded(3, 2, image::ImageFormat::Png)),
            Ok(())
        );
        // A PNG signature followed by garbage, and a truncated PNG, are not images.
        let mut garbage = b"\x89PNG\r\n\x1a\n".to_vec();
        garbage.extend_from_slice(&[0x55; 200]);
        assert_eq!(decode_check(&garbage), Err(CoverError::NotAnImage));
        let png = encoded(64, 64, image::ImageFormat::Png);
        assert_eq!(
            decode_check(&png[..png.len() / 2]),
            Err(CoverError::NotAnImage)
        );
        // A tiny file that declares a huge image is refused before anything is allocated.
        let wide = encoded(MAX_SIDE + 1, 1, image::ImageFormat::Png);
        assert_eq!(decode_check(&wide), Err(CoverError::TooManyPixels));
    }
}
