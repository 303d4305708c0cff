//! Plain-text articles as newsrooms drop them: an optional `Key: value` header block, then one
//! paragraph per line. Without a header everything is derived: the dateline
//! (`SURABAYA (Suarapubliknews) – `) becomes metadata, the lead sentence the title, the lead
//! paragraph the summary, trailing credits `(q cox, tama dinie)` the byline. Pure: text in, Draft out.

use super::{Draft, Meta, Reject};
use crate::article::{Dateline, escape_html};

/// Longest derived title, in characters, before it is shortened at a word boundary.
pub const TITLE_MAX: usize = 110;
/// Longest derived summary, in characters.
pub const SUMMARY_MAX: usize = 600;

/// Parses normalised text (LF line ends, no BOM) into a draft article.
pub fn parse(text: &str) -> Result<Draft, Reject> {
    let (meta, body) = split_header(text);
    let mut paragraphs = paragraphs(body);
    if paragraphs.is_empty() {
        return Err(Reject::new("no-body", "the article has no body text after its header block"));
    }
    let mut draft = Draft::default();

    // Trailing credits become the byline (unless the header names the author).
    if let Some(last) = paragraphs.last_mut()
        && let Some((rest, names)) = split_credits(last)
    {
        draft.credits = names;
        *last = rest.to_string();
        if last.is_empty() {
            paragraphs.pop();
        }
    }
    if paragraphs.is_empty() {
        return Err(Reject::new("no-body", "the article has only a credit line and no text"));
    }

    let (dateline, lead) = split_dateline(&paragraphs[0]);
    draft.dateline = dateline;
    let lead = lead.to_string();
    draft.derived_title = derive_title(&lead);
    draft.derived_summary = shorten(&lead, SUMMARY_MAX);
    draft.content_html = paragraphs.iter().map(|p| format!("<p>{}</p>", escape_html(p))).collect::<Vec<_>>().join("\n");
    draft.meta = meta;
    Ok(draft)
}

/// Splits off a leading `Key: value` block ended by a blank line. It counts as a header only if
/// every line has that shape and at least one key is one siar knows, so a body line such as
/// "Jakarta: ..." is never eaten.
fn split_header(text: &str) -> (Meta, &str) {
    let mut meta = Meta::default();
    let mut offset = 0;
    let mut known = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if meta.is_empty() {
                offset += line.len();
                continue; // leading blank lines
            }
            if known {
                return (meta, &text[offset + line.len()..]);
            }
            break;
        }
        let Some((key, value)) = header_line(trimmed) else { break };
        known |= Meta::is_known(key);
        meta.push(key, value);
        offset += line.len();
    }
    (Meta::default(), text)
}

fn header_line(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let ok = (1..=32).contains(&key.len())
        && key.as_bytes()[0].is_ascii_alphabetic()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| (key, value.trim()))
}

/// One paragraph per line; but a text hard-wrapped into blank-line-separated blocks of short lines
/// is joined back into paragraphs.
fn paragraphs(body: &str) -> Vec<String> {
    let blocks: Vec<Vec<&str>> = body
        .split("\n\n")
        .map(|b| b.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>())
        .filter(|b| !b.is_empty())
        .collect();
    let wrapped = blocks.len() > 1
        && blocks.iter().any(|b| b.len() > 1)
        && blocks.iter().filter(|b| b.len() > 1).all(|b| b[..b.len() - 1].iter().all(|l| l.chars().count() <= 80));
    if wrapped {
        blocks.iter().map(|b| b.join(" ")).collect()
    } else {
        blocks.into_iter().flatten().map(collapse_spaces).collect()
    }
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const DASHES: [char; 3] = ['–', '—', '-'];

/// Recognises a dateline at the start of the lead paragraph: `PLACE (Outlet) – `, `PLACE, Outlet — `,
/// `Place (OUTLET) - ` or `PLACE – `. Returns it and the text after it.
pub fn split_dateline(p: &str) -> (Option<Dateline>, &str) {
    // The separator: a dash with white space after it, within the first 80 characters.
    let limit = p.char_indices().nth(80).map_or(p.len(), |(i, _)| i);
    let Some(dash) = p[..limit].find(|c| DASHES.contains(&c)) else { return (None, p) };
    let head = p[..dash].trim_end();
    let mut after = &p[dash..];
    after = after.trim_start_matches(|c| DASHES.contains(&c));
    if !after.starts_with(char::is_whitespace) || head.is_empty() {
        return (None, p);
    }
    let after = after.trim_start();
    let dateline = if let Some(open) = head.find('(') {
        let place = head[..open].trim().trim_end_matches(',').trim();
        let outlet = head[open + 1..].strip_suffix(')').map(str::trim);
        match outlet {
            Some(o) if is_place(place, false) && is_outlet(o) => {
                Dateline { place: place.into(), outlet: Some(o.into()) }
            }
            _ => return (None, p),
        }
    } else if let Some((place, outlet)) = head.split_once(',') {
        let (place, outlet) = (place.trim(), outlet.trim());
        if !is_place(place, true) || !is_outlet(outlet) {
            return (None, p);
        }
        Dateline { place: place.into(), outlet: Some(outlet.into()) }
    } else if is_place(head, true) {
        Dateline { place: head.into(), outlet: None }
    } else {
        return (None, p);
    };
    if after.is_empty() { (None, p) } else { (Some(dateline), after) }
}

/// A place name: 1-4 words, each starting with a capital; `caps` demands all capitals (a dateline
/// without the outlet in parentheses is only trusted when written in capitals).
fn is_place(s: &str, caps: bool) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 4
        && s.chars().filter(|c| c.is_alphabetic()).count() >= 2
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars().all(|c| c.is_alphabetic() || matches!(c, '.' | '\'' | '-' | '’'))
                && (!caps || w.chars().all(|c| !c.is_lowercase()))
        })
}

fn is_outlet(s: &str) -> bool {
    (2..=60).contains(&s.chars().count())
        && s.chars().next().is_some_and(char::is_alphanumeric)
        && s.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '&' | '\''))
}

/// Trailing credits in parentheses at the very end of the last paragraph, after the end of a
/// sentence: `... waktu. (q cox, tama dinie)`. Returns the paragraph without them and the names.
fn split_credits(p: &str) -> Option<(&str, Vec<String>)> {
    let t = p.trim_end();
    let inner_end = t.strip_suffix(')')?;
    let open = inner_end.rfind('(')?;
    let inner = inner_end[open + 1..].trim();
    let before = inner_end[..open].trim_end();
    let after_sentence = before.is_empty() || before.ends_with(['.', '!', '?', '"', '”', '’', '\'', '»']);
    if !after_sentence
        || !(2..=80).contains(&inner.chars().count())
        || inner.contains(['(', ')'])
        || !inner.chars().any(char::is_alphabetic)
        || inner.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut names = Vec::new();
    let mut rest = inner.to_string();
    for sep in [" dan ", " and ", " & ", ";", "/", "&"] {
        rest = rest.replace(sep, ",");
    }
    for name in rest.split(',') {
        let name = name.trim().trim_start_matches(['-', '*']).trim();
        if name.is_empty() {
            continue;
        }
        if name.split_whitespace().count() > 4 || name.contains(['.', '!', '?', ':']) && name.chars().count() > 6 {
            return None; // reads like a sentence, not a byline
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return None;
    }
    Some((before, names))
}

/// The title derived from a lead paragraph: its first sentence, shortened at a word boundary.
pub fn derive_title(lead: &str) -> String {
    let sentence = first_sentence(lead);
    let sentence = sentence.strip_suffix('.').unwrap_or(sentence);
    shorten(sentence, TITLE_MAX)
}

/// Abbreviations that end with a period without ending a sentence (Indonesian and English).
const ABBREVIATIONS: &[&str] = &[
    "dr", "drs", "dra", "ir", "prof", "h", "hj", "st", "jl", "jln", "no", "kh", "kec", "kab", "kel", "tbk", "pt", "cv",
    "dll", "dsb", "dst", "yth", "bpk", "sdr", "ny", "tn", "mr", "mrs", "ms", "jr", "sr", "vs", "etc", "inc", "ltd",
    "co", "rp", "s.h", "s.e", "m.si", "s.pd", "mt", "sh", "se",
];

fn first_sentence(p: &str) -> &str {
    let chars: Vec<(usize, char)> = p.char_indices().collect();
    for (i, &(pos, c)) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        // Closing quotes stay with the sentence.
        let mut j = i + 1;
        while j < chars.len() && matches!(chars[j].1, '"' | '”' | '’' | '\'' | ')') {
            j += 1;
        }
        let end = chars.get(j).map_or(p.len(), |&(b, _)| b);
        if j >= chars.len() {
            return p;
        }
        if !chars[j].1.is_whitespace() {
            continue;
        }
        let next = p[end..].trim_start().chars().next();
        if !next.is_some_and(|n| n.is_uppercase() || n.is_ascii_digit() || matches!(n, '"' | '“' | '‘' | '\'')) {
            continue;
        }
        if c == '.' {
            let word = p[..pos].rsplit(|ch: char| ch.is_whitespace() || ch == '(').next().unwrap_or_default();
            let w = word.to_lowercase();
            if word.chars().count() == 1 || ABBREVIATIONS.contains(&w.as_str()) {
                continue;
            }
        }
        return p[..end].trim_end();
    }
    p
}

/// Shortens at a word boundary to at most `max` characters, adding an ellipsis when it cut.
pub fn shorten(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
    let head = &s[..cut];
    let head = match head.rfind(char::is_whitespace) {
        Some(sp) if sp > max / 2 => &head[..sp],
        _ => head,
    };
    format!("{}…", head.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-' | '–' | '—')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dateline_shapes() {
        let cases = [
            ("SURABAYA (Suarapubliknews) – Seluruh anggota", "SURABAYA", Some("Suarapubliknews"), "Seluruh anggota"),
            ("BANDUNG, Suarapubliknews — Hujan deras", "BANDUNG", Some("Suarapubliknews"), "Hujan deras"),
            ("Jakarta (ANTARA) - Presiden", "Jakarta", Some("ANTARA"), "Presiden"),
            ("BANDA ACEH - Gempa", "BANDA ACEH", None, "Gempa"),
            ("SURABAYA (Suarapubliknews) -- Dua tanda", "SURABAYA", Some("Suarapubliknews"), "Dua tanda"),
        ];
        for (text, place, outlet, rest) in cases {
            let (d, after) = split_dateline(text);
            let d = d.unwrap_or_else(|| panic!("no dateline in {text}"));
            assert_eq!((d.place.as_str(), d.outlet.as_deref(), after), (place, outlet, rest), "{text}");
        }
        for text in [
            "Pemerintah kota - yang baru - mengumumkan",
            "Menurut dia, harga-harga naik",
            "Ini Surabaya – kota pahlawan",
            "COVID-19 merebak",
        ] {
            assert!(split_dateline(text).0.is_none(), "false dateline in {text}");
        }
    }

    #[test]
    fn credits_become_authors() {
        let (rest, names) = split_credits("Hal itu harus dijaga. (q cox, tama dinie)").expect("credits");
        assert_eq!(rest, "Hal itu harus dijaga.");
        assert_eq!(names, ["q cox", "tama dinie"]);
        assert_eq!(split_credits("Selesai. (ant/nn)").expect("credits").1, ["ant", "nn"]);
        assert!(split_credits("Dana naik (Rp 5 miliar)").is_none());
        assert!(split_credits("Selesai. (*)").is_none());
        assert!(split_credits("Selesai. (2020)").is_none());
    }

    #[test]
    fn titles_from_lead_sentences() {
        assert_eq!(derive_title("Harga cabai naik. Pedagang mengeluh."), "Harga cabai naik");
        assert_eq!(
            derive_title("Dr. Budi dan H. Ali hadir di Jl. Merdeka. Acara dimulai."),
            "Dr. Budi dan H. Ali hadir di Jl. Merdeka"
        );
        assert_eq!(derive_title("Gubernur bilang “Maju!” Lalu pergi."), "Gubernur bilang “Maju!”");
        let long = "Seluruh anggota Korps Pegawai Negeri (Korpri) diharapkan sigap dan tanggap dalam merespon perubahan global akibat Pandemi Covid-19.";
        let t = derive_title(long);
        assert!(t.chars().count() <= TITLE_MAX && t.ends_with('…'), "{t}");
        assert!(t.starts_with("Seluruh anggota Korps"), "{t}");
        assert!(!t.contains("Covid-1…"), "cut inside a word: {t}");
    }

    #[test]
    fn header_block_only_with_known_keys() {
        let (meta, body) = split_header("Title: Judul\nAuthor: Ani\nX-Desk: kota\n\nIsi berita.\n");
        assert_eq!(meta.get("title"), Some("Judul"));
        assert_eq!(meta.extra().get("X-Desk").map(String::as_str), Some("kota"));
        assert_eq!(body, "Isi berita.\n");
        let (meta, body) = split_header("Jakarta: kota besar\n\nIsi.\n");
        assert!(meta.is_empty());
        assert_eq!(body, "Jakarta: kota besar\n\nIsi.\n");
    }

    #[test]
    fn hard_wrapped_text_is_joined() {
        let p = paragraphs("Baris satu yang\ndibungkus pendek.\n\nParagraf dua\njuga pendek.\n");
        assert_eq!(p, ["Baris satu yang dibungkus pendek.", "Paragraf dua juga pendek."]);
        let p = paragraphs("Satu paragraf.\nDua paragraf.\n");
        assert_eq!(p, ["Satu paragraf.", "Dua paragraf."]);
    }

    #[test]
    fn markup_stays_text() {
        let d = parse("Judul <script>alert(1)</script> & lainnya. Isi.\n").expect("draft");
        assert!(d.content_html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; lainnya"), "{}", d.content_html);
        assert!(!d.content_html.contains("<script>"));
    }
}
