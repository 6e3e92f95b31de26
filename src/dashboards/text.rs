//! Text panels: Markdown rendered to HTML with everything that could run or reach out removed.
//! Raw HTML in the source (blocks and inline) is shown as text, never passed through; link and
//! image targets are kept only when they are `http(s):`, `mailto:`, relative or fragment URLs
//! (no `javascript:`, `data:` or `vbscript:`); images become links (the page's CSP would block
//! remote images anyway). `html` mode is treated as Markdown with the same rules, and `code`
//! mode shows the content as a code block.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// The longest content rendered; the rest is cut.
pub const MAX_CONTENT: usize = 256 * 1024;

pub fn render(content: &str, mode: &str) -> String {
    let mut end = content.len().min(MAX_CONTENT);
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    let content = &content[..end];
    if mode == "code" {
        return format!(
            "<pre><code>{}</code></pre>",
            crate::base::html::escape(content)
        );
    }
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(content, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url, title, ..
        }) => Event::Start(Tag::Link {
            link_type: pulldown_cmark::LinkType::Inline,
            dest_url: safe_url(dest_url),
            title,
            id: CowStr::Borrowed(""),
        }),
        Event::End(pulldown_cmark::TagEnd::Image) => Event::End(pulldown_cmark::TagEnd::Link),
        other => other,
    });
    let mut out = String::with_capacity(content.len() * 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn safe_url(u: CowStr<'_>) -> CowStr<'_> {
    let t: String = u
        .trim()
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_end = t.find(':');
    let first_sep = t.find(['/', '?', '#']);
    let has_scheme = match (scheme_end, first_sep) {
        (Some(c), Some(s)) => c < s,
        (Some(_), None) => true,
        _ => false,
    };
    if !has_scheme || t.starts_with("http:") || t.starts_with("https:") || t.starts_with("mailto:")
    {
        u
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_without_scripts() {
        let cases = [
            (
                "# Title\n\n*em* and [docs](https://example.com/a)",
                "<h1>Title</h1>",
                true,
            ),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
                true,
            ),
            (
                "x <img src=x onerror=alert(1)> y",
                "&lt;img src=x onerror=alert(1)&gt;",
                true,
            ),
            ("[a](javascript:alert(1))", "href=\"#\"", true),
            ("[a](JaVaScRiPt:alert(1))", "href=\"#\"", true),
            ("[a](java\tscript:alert(1))", "href", false),
            ("[a](data:text/html,<b>)", "href=\"#\"", true),
            ("[a](/ui/gpu?x=1)", "href=\"/ui/gpu?x=1\"", true),
            ("![i](javascript:alert(1))", "href=\"#\"", true),
            ("| a | b |\n|---|---|\n| 1 | 2 |", "<table>", true),
        ];
        for (src, want, present) in cases {
            let html = render(src, "markdown");
            assert_eq!(html.contains(want), present, "{src} -> {html}");
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("javascript:"), "{html}");
        }
        assert_eq!(
            render("<b>x</b>", "code"),
            "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"
        );
        let big = "a".repeat(1 << 20);
        assert!(render(&big, "markdown").len() < 300 * 1024);
    }
}
