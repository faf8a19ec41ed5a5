//! The console's two languages. Every text is written in both, side by side where it is used
//! (`lang.t("Tổng quan", "Overview")`), so no page can miss a translation. The language is the
//! `lang` cookie set by the switch on every page, else the browser's `Accept-Language`, else
//! Vietnamese.

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Tiếng Việt (the default).
    Vi,
    /// English.
    En,
}

/// The language cookie's name.
pub const COOKIE: &str = "schooldns_lang";

impl Lang {
    /// `vi` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// Reads `vi` or `en`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (the switch's target).
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    /// Whether this is Vietnamese (for data that carries both names).
    pub fn is_vi(self) -> bool {
        self == Lang::Vi
    }

    /// The Vietnamese or the English text.
    pub fn t<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The page's language: the cookie, else the most preferred of `vi`/`en` in
    /// `Accept-Language` (weights honoured), else Vietnamese.
    pub fn of(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::parse) {
            return lang;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or("").split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            if best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Lang::Vi, |(_, lang)| lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_cookie_then_browser_then_vietnamese() {
        assert_eq!(Lang::of(None, None), Lang::Vi);
        assert_eq!(Lang::of(None, Some("fr-FR,de;q=0.5")), Lang::Vi);
        assert_eq!(Lang::of(None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::of(None, Some("vi-VN,vi;q=0.9,en;q=0.8")), Lang::Vi);
        assert_eq!(Lang::of(None, Some("en;q=0.4,vi;q=0.8")), Lang::Vi);
        assert_eq!(Lang::of(Some("en"), Some("vi")), Lang::En);
        assert_eq!(Lang::of(Some("xx"), Some("en")), Lang::En);
    }
}
