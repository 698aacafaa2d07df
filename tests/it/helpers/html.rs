//! Reading the server's HTML as a browser would: start tags with their attributes, and the
//! text a person reads.
//!
//! The markup is tokenized by html5gum, a WHATWG-conformant HTML tokenizer (it passes the
//! html5lib tokenizer tests): character references, attributes in any quoting, self-closing
//! tags, comments and the raw-text elements are read as the HTML standard says.

use html5gum::{DefaultEmitter, HtmlString, State, Token, Tokenizer};

/// The tokens of a page, with the tokenizer switching into the RCDATA and raw-text states after
/// `<title>`, `<textarea>`, `<script>`, `<style>` as a browser's tree builder would.
fn page_tokens(html: &str) -> impl Iterator<Item = Token> + '_ {
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    Tokenizer::new_with_emitter(html, emitter).filter_map(Result::ok)
}

fn decoded(bytes: &HtmlString) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One HTML start tag and its attributes (names lower-cased, values with their character
/// references decoded; sorted by name, the first of duplicate attributes kept).
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every `<name ...>` start tag in a page, in order.
pub fn tags(html: &str, name: &str) -> Vec<Tag> {
    let name = name.to_ascii_lowercase();
    page_tokens(html)
        .filter_map(|token| match token {
            Token::StartTag(tag) if tag.name.as_slice() == name.as_bytes() => Some(Tag {
                name: name.clone(),
                attrs: tag
                    .attributes
                    .iter()
                    .map(|(key, value)| (decoded(key), decoded(&value.value)))
                    .collect(),
            }),
            _ => None,
        })
        .collect()
}

/// Decodes the character references in a piece of text (named and numeric), as HTML does in
/// text that cannot hold tags, such as a `<textarea>`'s.
pub fn unescape_html(text: &str) -> String {
    let mut tokenizer = Tokenizer::new(text);
    tokenizer.set_state(State::RcData);
    tokenizer
        .filter_map(Result::ok)
        .filter_map(|token| match token {
            Token::String(text) => Some(decoded(&text.value)),
            _ => None,
        })
        .collect()
}

/// The text a person reads on a page: tags, comments and the content of `<script>` and
/// `<style>` dropped, references decoded, whitespace collapsed.
pub fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut hidden: Option<Vec<u8>> = None;
    for token in page_tokens(html) {
        match token {
            Token::String(words) if hidden.is_none() => text.push_str(&decoded(&words.value)),
            Token::String(_) | Token::Error(_) => {}
            Token::StartTag(tag) if hidden.is_none() => {
                if matches!(tag.name.as_slice(), b"script" | b"style") && !tag.self_closing {
                    hidden = Some(tag.name.to_vec());
                }
                text.push(' ');
            }
            Token::EndTag(tag) if hidden.as_deref() == Some(tag.name.as_slice()) => {
                hidden = None;
                text.push(' ');
            }
            _ => text.push(' '),
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of the `<input>` with this name.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .into_iter()
        .find(|t| t.attr("name") == Some(name))
        .map(|t| t.attr("value").unwrap_or_default().to_owned())
}
