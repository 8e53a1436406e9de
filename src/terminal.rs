//! Text made safe for a terminal. Everything the helper prints may hold text from outside (a
//! config file, Docker's config, the environment, a registry, the Harbor API, a token
//! endpoint), and a hostile value could otherwise retitle or clear the terminal, fake lines, or
//! reorder what is shown with Unicode bidi controls. The printing ends ([`crate::log`], the
//! binary's error lines, [`Lines`] around the human verbs' output, `check`'s report) pass all
//! text through [`escape`], so no caller has to remember it.

use std::borrow::Cow;
use std::io::Write;

/// True for characters that must never reach a terminal raw: C0 controls (ESC, CR, LF, ...),
/// DEL, C1 controls, the bidi embedding/override/isolate controls (U+202A-U+202E,
/// U+2066-U+2069) and the zero-width and direction marks (U+200B-U+200F).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every `is_unsafe` character written as a visible escape the way Rust's `{:?}`
/// does (`\u{1b}`, `\n`, `\u{202e}`); everything else, the backslash included, is kept.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    Cow::Owned(out)
}

/// [`escape`] in place.
pub fn escape_in_place(text: &mut String) {
    if let Cow::Owned(escaped) = escape(text) {
        *text = escaped;
    }
}

/// A writer for multi-line human output: each line is passed through [`escape`] on its way
/// out, its line break and tabs kept. Bytes that are not UTF-8 are shown as U+FFFD. Call
/// [`Lines::finish`] (or drop it) to write a last line without a line break.
pub struct Lines<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> Lines<W> {
    /// Escapes what is written before it reaches `inner`.
    pub fn new(inner: W) -> Lines<W> {
        Lines {
            inner,
            pending: Vec::new(),
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        // Tabs stay: they indent the user's own files in `configure-docker --dry-run`'s diff
        // and can neither move the cursor elsewhere nor send a command.
        let line = String::from_utf8_lossy(line);
        for (i, piece) in line.split('\t').enumerate() {
            if i > 0 {
                self.inner.write_all(b"\t")?;
            }
            self.inner.write_all(escape(piece).as_bytes())?;
        }
        Ok(())
    }

    /// Writes what is left (a last line without a line break) and flushes.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.write_line(&rest)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.write_line(&line[..end])?;
            self.inner.write_all(b"\n")?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // A partial line stays pending: escaping it now could split a character.
        self.inner.flush()
    }
}

impl<W: Write> Drop for Lines<W> {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_zero_width_characters_are_escaped_and_nothing_else() {
        let hostile = "reg\u{1b}]0;owned\u{7}\r\nfake line\u{7f}\u{9b}2J \u{202e}txt.exe\u{2066}\u{200b}\u{200f}";
        let out = escape(hostile);
        assert!(!out.chars().any(is_unsafe), "{out}");
        assert_eq!(
            out,
            "reg\\u{1b}]0;owned\\u{7}\\r\\nfake line\\u{7f}\\u{9b}2J \\u{202e}txt.exe\\u{2066}\\u{200b}\\u{200f}"
        );
        for kept in [
            "plain ascii",
            "Grüße, 東京, emoji 🚀",
            "C:\\path\\file",
            "\u{2010}hyphen \u{2030} \u{2070}",
        ] {
            assert!(matches!(escape(kept), Cow::Borrowed(_)), "{kept}");
        }
    }

    #[test]
    fn the_line_writer_escapes_each_line_and_keeps_line_breaks() {
        let mut out = Vec::new();
        {
            let mut lines = Lines::new(&mut out);
            // Split inside a line and inside a multi-byte character.
            let text = "one \u{1b}[2J\ntwo \u{202e}x\n\tlast ü".as_bytes();
            let cut = text.len() - 1;
            lines.write_all(&text[..cut]).unwrap();
            lines.write_all(&text[cut..]).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "one \\u{1b}[2J\ntwo \\u{202e}x\n\tlast ü"
        );
    }
}
