//! Bytes -> text for drop files: a BOM decides, else valid UTF-8, else a detected legacy 8-bit
//! encoding (chardetng, not a blind guess). Binary files are recognised and refused with a reason.

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::Encoding;

use super::Reject;

/// File signatures of things that are commonly saved with a `.txt` name by mistake.
const MAGIC: &[(&[u8], &str)] = &[
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.odt document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"RIFF", "a RIFF (WebP/WAV/AVI) file"),
    (b"\x7fELF", "an executable"),
];

/// Decodes a drop file into text with the encoding it names: `Ok((text, encoding name))`.
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), Reject> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Reject::new("empty", "the file is empty (or only white space): nothing to publish"));
    }
    if let Some((_, what)) = MAGIC.iter().find(|(m, _)| bytes.starts_with(m)) {
        return Err(Reject::new(
            "not-text",
            format!("not a text file: it looks like {what}; drop the article as plain text or Markdown"),
        ));
    }
    let (text, encoding) = if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        if had_errors {
            return Err(Reject::new(
                "undecodable",
                format!("starts with a {} byte-order mark but is not valid {0}", enc.name()),
            ));
        }
        (text.into_owned(), enc.name())
    } else if bytes.contains(&0) {
        return Err(Reject::new(
            "not-text",
            "not a text file: it contains NUL bytes (binary data, or UTF-16 without a byte-order mark)",
        ));
    } else if let Ok(s) = std::str::from_utf8(bytes) {
        (s.to_string(), "UTF-8")
    } else {
        let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
        detector.feed(bytes, true);
        let enc = detector.guess(None, Utf8Detection::Allow);
        let (text, had_errors) = enc.decode_without_bom_handling(bytes);
        if had_errors || enc == encoding_rs::UTF_8 {
            return Err(Reject::new("undecodable", "not valid UTF-8 and no legacy encoding fits it; save it as UTF-8"));
        }
        (text.into_owned(), enc.name())
    };
    let controls = text
        .chars()
        .filter(|&c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}')) || c == '\u{fffd}')
        .count();
    let total = text.chars().count().max(1);
    if controls * 20 > total {
        return Err(Reject::new(
            "not-text",
            format!("not a text file: {controls} of its {total} characters are control codes (decoded as {encoding})"),
        ));
    }
    Ok((text, encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode("Halo “dunia”".as_bytes()).expect("text").0, "Halo “dunia”");
        let mut b = b"\xef\xbb\xbf".to_vec();
        b.extend_from_slice("Halo".as_bytes());
        assert_eq!(decode(&b).expect("text").0, "Halo");
    }

    #[test]
    fn windows_1252_is_detected() {
        let b = b"Gubernur berkata \x93Inovasi adalah ruhnya birokrasi\x94 dan caf\xe9 itu ramai sekali hari ini.";
        let (text, enc) = decode(b).expect("text");
        assert!(text.contains("“Inovasi adalah ruhnya birokrasi”"), "{text}");
        assert!(text.contains("café"), "{text}");
        assert_eq!(enc, "windows-1252");
    }

    #[test]
    fn utf16_with_bom() {
        let mut b = vec![0xff, 0xfe];
        for u in "Judul berita".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&b).expect("text").0, "Judul berita");
    }

    #[test]
    fn junk_is_refused_with_a_reason() {
        assert_eq!(decode(b"").unwrap_err().code, "empty");
        assert_eq!(decode(b" \n\r\n").unwrap_err().code, "empty");
        assert!(decode(b"\x89PNG\r\n\x1a\n\0\0").unwrap_err().reason.contains("PNG"));
        assert_eq!(decode(b"abc\0def").unwrap_err().code, "not-text");
        let junk: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 1).collect();
        assert!(decode(&junk).is_err());
    }
}
