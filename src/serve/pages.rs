//! The index page: the public feeds, with `<link rel="alternate">` tags so a browser or reader
//! given the server's address discovers them. Keyed feeds are never listed.

use crate::article::escape_html;
use crate::config::{Access, Config};

pub fn index(cfg: &Config) -> String {
    let title = escape_html(&cfg.site.title);
    let mut head = String::new();
    let mut list = String::new();
    for f in cfg.feeds.iter().filter(|f| f.access == Access::Public) {
        let name = escape_html(&f.title);
        let mut links = Vec::new();
        for (ext, mime, kind) in [
            ("atom", "application/atom+xml", "Atom"),
            ("rss", "application/rss+xml", "RSS"),
            ("json", "application/feed+json", "JSON Feed"),
        ] {
            let url = escape_html(&f.url(&cfg.publish, ext));
            head += &format!("<link rel=\"alternate\" type=\"{mime}\" title=\"{name} ({kind})\" href=\"{url}\">\n");
            links.push(format!("<a href=\"{url}\">{kind}</a>"));
        }
        list += &format!("<li>{name} <small>({})</small>: {}</li>\n", escape_html(&f.name), links.join(" · "));
    }
    let opml = escape_html(&format!("{}feeds.opml", cfg.site.link));
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n{head}\
         </head>\n<body>\n<h1>{title}</h1>\n<p>{desc}</p>\n<ul>\n{list}</ul>\n\
         <p><a href=\"{opml}\">All feeds as OPML</a></p>\n</body>\n</html>\n",
        lang = escape_html(&cfg.site.language),
        desc = escape_html(&cfg.site.description),
    )
}
