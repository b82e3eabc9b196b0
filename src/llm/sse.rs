//! An incremental parser of `text/event-stream` bodies (the WHATWG event-stream format).
//!
//! Bytes arrive in arbitrary chunks: a line, a CRLF pair or a UTF-8 sequence may be split
//! between two of them. The parser keeps the unfinished line and hands out whole events.

/// One dispatched event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Longest line accepted; a provider that sends more without a newline is broken.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next one belongs to it.
    after_cr: bool,
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push(&rest[..end])?;
            self.end_line(out)?;
            if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => rest = &rest[end + 2..],
                    Some(_) => rest = &rest[end + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[end + 1..];
            }
        }
        self.push(rest)
    }

    /// The body ended: an unterminated last line and a pending event still count (some
    /// servers omit the final blank line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(format!(
                "event-stream line longer than {MAX_LINE_BYTES} bytes"
            ));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        let raw = std::mem::take(&mut self.line);
        let mut line =
            std::str::from_utf8(&raw).map_err(|_| "event-stream line is not UTF-8".to_owned())?;
        if !self.started {
            self.started = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // `id`, `retry` and unknown fields mean nothing to a chat answer
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.has_data {
            self.has_data = false;
            out.push(SseEvent {
                event,
                data: std::mem::take(&mut self.data),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in body.chunks(piece) {
            parser.feed(chunk, &mut out).expect("feeds");
        }
        parser.finish(&mut out).expect("finishes");
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_survive_any_split() {
        let body = "\u{feff}: keep-alive\r\nevent: message_start\r\ndata: {\"a\":\"h\u{e9}\u{1f600}\"}\r\n\r\n\
                    data: one\ndata:two\n\nid: 7\nretry: 10\ndata: [DONE]\r\r";
        let want = vec![
            ev(Some("message_start"), "{\"a\":\"h\u{e9}\u{1f600}\"}"),
            ev(None, "one\ntwo"),
            ev(None, "[DONE]"),
        ];
        for piece in 1..=body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                want,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        let got = parse_in_pieces(b"event: ping\n\n\n\ndata\n\n", 3);
        assert_eq!(got, vec![ev(None, "")]);
    }

    #[test]
    fn an_unterminated_last_event_still_counts() {
        assert_eq!(
            parse_in_pieces(b"data: [DONE]", 5),
            vec![ev(None, "[DONE]")]
        );
    }

    #[test]
    fn invalid_utf8_and_endless_lines_are_errors() {
        let mut parser = SseParser::new();
        let err = parser
            .feed(b"data: \xff\xfe\n", &mut Vec::new())
            .expect_err("not UTF-8");
        assert!(err.contains("UTF-8"), "{err}");
        let mut parser = SseParser::new();
        let big = vec![b'a'; MAX_LINE_BYTES / 2 + 1];
        parser.feed(&big, &mut Vec::new()).expect("first half");
        let err = parser.feed(&big, &mut Vec::new()).expect_err("too long");
        assert!(err.contains("longer"), "{err}");
    }
}
