//! Text without an allocator: a fixed buffer that `write!` fills (log
//! lines, error messages), UTF-16 ⇄ UTF-8 for the Win32 `W` functions, and
//! the Windows command-line split (the rules of `CommandLineToArgvW`, which
//! lives in shell32 and is not imported).

use core::fmt;

/// A fixed-size text buffer for `write!`; what does not fit is cut off
/// (at a character boundary) rather than failing.
pub struct Buffer<const N: usize> {
    bytes: [u8; N],
    length: usize,
}

impl<const N: usize> Buffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            length: 0,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text so far as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.length).unwrap_or(&[])
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.length = 0;
    }
}

impl<const N: usize> Default for Buffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Buffer<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = N - self.length;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(target), Some(source)) = (
            self.bytes.get_mut(self.length..self.length + take),
            text.as_bytes().get(..take),
        ) {
            target.copy_from_slice(source);
            self.length += take;
        }
        Ok(())
    }
}

/// Converts UTF-16 (up to a NUL or the end) to UTF-8 in `out`, unpaired
/// surrogates becoming U+FFFD. `None` when `out` is too small.
pub fn utf16_to_utf8<'a>(input: &[u16], out: &'a mut [u8]) -> Option<&'a str> {
    let end = input
        .iter()
        .position(|&unit| unit == 0)
        .unwrap_or(input.len());
    let mut length = 0;
    for character in char::decode_utf16(input.get(..end)?.iter().copied()) {
        let character = character.unwrap_or(char::REPLACEMENT_CHARACTER);
        let target = out.get_mut(length..length + character.len_utf8())?;
        character.encode_utf8(target);
        length += character.len_utf8();
    }
    core::str::from_utf8(out.get(..length)?).ok()
}

/// Converts `input` to NUL-terminated UTF-16 in `out`; `None` when it
/// does not fit.
pub fn utf8_to_utf16<'a>(input: &str, out: &'a mut [u16]) -> Option<&'a [u16]> {
    let mut length = 0;
    for unit in input.encode_utf16() {
        *out.get_mut(length)? = unit;
        length += 1;
    }
    *out.get_mut(length)? = 0;
    out.get(..=length)
}

/// Splits a Windows command line into arguments the way the C runtime
/// does: whitespace separates except inside double quotes; `2n` backslashes
/// before a quote give `n` backslashes and toggle quoting, `2n+1` give `n`
/// and a literal quote; other backslashes are literal. The arguments are
/// written to `storage` (never more bytes than `line`) and returned in
/// order, the program name first. `None` when `storage` is too small.
pub fn split_command_line<'a>(line: &str, storage: &'a mut [u8]) -> Option<Arguments<'a>> {
    let bytes = line.as_bytes();
    let mut out = 0;
    let mut position = 0;
    let push = |storage: &mut [u8], out: &mut usize, byte: u8| -> Option<()> {
        *storage.get_mut(*out)? = byte;
        *out += 1;
        Some(())
    };
    loop {
        while bytes
            .get(position)
            .is_some_and(|&byte| byte == b' ' || byte == b'\t')
        {
            position += 1;
        }
        if position >= bytes.len() {
            break;
        }
        let mut quoted = false;
        while let Some(&byte) = bytes.get(position) {
            match byte {
                b'\\' => {
                    let run = bytes
                        .get(position..)?
                        .iter()
                        .take_while(|&&byte| byte == b'\\')
                        .count();
                    position += run;
                    if bytes.get(position) == Some(&b'"') {
                        for _ in 0..run / 2 {
                            push(storage, &mut out, b'\\')?;
                        }
                        if run % 2 == 1 {
                            push(storage, &mut out, b'"')?;
                            position += 1;
                        }
                    } else {
                        for _ in 0..run {
                            push(storage, &mut out, b'\\')?;
                        }
                    }
                }
                b'"' => {
                    quoted = !quoted;
                    position += 1;
                }
                b' ' | b'\t' if !quoted => break,
                _ => {
                    push(storage, &mut out, byte)?;
                    position += 1;
                }
            }
        }
        push(storage, &mut out, 0)?;
    }
    // Only whole characters were copied (the split points are ASCII).
    let text = core::str::from_utf8(storage.get(..out)?).ok()?;
    Some(Arguments { rest: text })
}

/// The arguments of a split command line, in order.
#[derive(Debug, Clone)]
pub struct Arguments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Arguments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (argument, rest) = self.rest.split_once('\0')?;
        self.rest = rest;
        Some(argument)
    }
}

/// Appends `argument` to a command line being built in `out`, separated
/// by a space and quoted when it holds whitespace. `None` when it holds a
/// double quote (never needed here) or does not fit.
pub fn push_argument<const N: usize>(out: &mut Buffer<N>, argument: &str) -> Option<()> {
    use core::fmt::Write;
    if argument.contains('"') {
        return None;
    }
    let separator = if out.as_bytes().is_empty() { "" } else { " " };
    let needs_quotes = argument.is_empty() || argument.contains([' ', '\t']);
    let before = out.as_bytes().len();
    let result = if needs_quotes {
        // A trailing backslash would escape the closing quote: double it.
        let trailing = if argument.ends_with('\\') { "\\" } else { "" };
        write!(out, "{separator}\"{argument}{trailing}\"")
    } else {
        write!(out, "{separator}{argument}")
    };
    let expected = separator.len() + argument.len() + if needs_quotes { 2 } else { 0 };
    (result.is_ok() && out.as_bytes().len() - before >= expected).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn a_full_buffer_cuts_at_a_character_boundary() {
        let mut buffer = Buffer::<5>::new();
        write!(buffer, "abčde").expect("never fails");
        assert_eq!(buffer.as_str(), "abčd");
        write!(buffer, "more").expect("never fails");
        assert_eq!(buffer.as_str(), "abčd");
        buffer.clear();
        assert_eq!(buffer.as_str(), "");
    }

    #[test]
    fn utf16_round_trip() {
        let mut wide = [0u16; 16];
        let encoded = utf8_to_utf16("C:\\dns €", &mut wide).expect("fits");
        assert_eq!(encoded.len(), 9, "8 units and a NUL");
        let mut narrow = [0u8; 16];
        assert_eq!(utf16_to_utf8(encoded, &mut narrow), Some("C:\\dns €"));
        assert_eq!(
            utf16_to_utf8(&[0xd800, 0x41], &mut narrow),
            Some("\u{fffd}A")
        );
        assert_eq!(utf16_to_utf8(encoded, &mut narrow[..3]), None);
        assert_eq!(
            utf8_to_utf16("toolong", &mut wide[..7]),
            None,
            "no room for the NUL"
        );
    }

    #[test]
    fn command_lines_split_like_the_c_runtime() {
        let cases: &[(&str, &[&str])] = &[
            ("dns64d-xp.exe run", &["dns64d-xp.exe", "run"]),
            (
                "\"C:\\Program Files\\dns64d-xp\\dns64d-xp.exe\" service --listen 127.0.0.1:53",
                &[
                    "C:\\Program Files\\dns64d-xp\\dns64d-xp.exe",
                    "service",
                    "--listen",
                    "127.0.0.1:53",
                ],
            ),
            ("  a\t\tb  ", &["a", "b"]),
            ("a \"b c\" d", &["a", "b c", "d"]),
            ("a\\\\\"b c\"", &["a\\b c"]),
            ("a\\\"b", &["a\"b"]),
            ("a\\\\b", &["a\\\\b"]),
            ("x \"\"", &["x", ""]),
            ("", &[]),
        ];
        for &(line, expected) in cases {
            let mut storage = [0u8; 128];
            let arguments = split_command_line(line, &mut storage).expect("fits");
            assert!(
                arguments.clone().eq(expected.iter().copied()),
                "{line:?}: {:?}",
                arguments.collect::<ArgList>()
            );
        }
        let mut small = [0u8; 4];
        assert!(split_command_line("abcd", &mut small).is_none());
    }

    /// Collects arguments for an assertion message without an allocator.
    #[derive(Debug, Default)]
    struct ArgList([Option<[u8; 16]>; 8]);

    impl<'a> FromIterator<&'a str> for ArgList {
        fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
            let mut list = ArgList::default();
            for (slot, argument) in list.0.iter_mut().zip(iter) {
                let mut bytes = [0u8; 16];
                let length = argument.len().min(16);
                bytes[..length].copy_from_slice(&argument.as_bytes()[..length]);
                *slot = Some(bytes);
            }
            list
        }
    }

    #[test]
    fn built_command_lines_split_back() {
        let mut line = Buffer::<256>::new();
        for argument in [
            "C:\\Program Files\\x\\dns64d-xp.exe",
            "service",
            "--upstream",
            "[::1]:53",
            "C:\\a b\\",
        ] {
            push_argument(&mut line, argument).expect("fits");
        }
        let mut storage = [0u8; 256];
        let split = split_command_line(line.as_str(), &mut storage).expect("fits");
        assert!(split.eq([
            "C:\\Program Files\\x\\dns64d-xp.exe",
            "service",
            "--upstream",
            "[::1]:53",
            "C:\\a b\\"
        ]));
        assert!(push_argument(&mut line, "a\"b").is_none());
        let mut tiny = Buffer::<4>::new();
        assert!(push_argument(&mut tiny, "toolong").is_none());
    }
}
