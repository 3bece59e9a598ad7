//! Reading an event's JSON text in place: paths and scalars straight from the
//! text as Tracim wrote it, so a number reaches a hook as the very characters it
//! was sent with (`1E2`, `-0`, `123456789012345678901234567890`), which no
//! decoded number type keeps.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

/// One JSON value of the text, one level deep: its members are read further only
/// when asked for.
#[derive(Debug)]
pub enum Node<'a> {
    /// An object's members, in the order they were written.
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    /// An array's items.
    Array(Vec<&'a RawValue>),
    /// A scalar's text as hooks see it: a string unescaped, a number, `true`
    /// and `false` as written, `null` as empty.
    Scalar(Cow<'a, str>),
}

impl<'a> Node<'a> {
    /// Reads one value. `None` only for text that is not JSON, which an event
    /// never holds (its whole text was checked on arrival).
    pub fn of(raw: &'a RawValue) -> Option<Node<'a>> {
        Node::of_text(raw.get())
    }

    /// [`Node::of`] for text known to be one JSON value: read once, not checked
    /// first as a whole and then read.
    pub(super) fn of_text(text: &'a str) -> Option<Node<'a>> {
        match text.as_bytes().first()? {
            b'{' => {
                let mut de = serde_json::Deserializer::from_str(text);
                Some(Node::Object(Members::deserialize(&mut de).ok()?.0))
            }
            b'[' => serde_json::from_str::<Vec<&'a RawValue>>(text)
                .ok()
                .map(Node::Array),
            // Without an escape, a string's value is the text between its quotes.
            b'"' if !text.contains('\\') => text
                .get(1..text.len() - 1)
                .map(|inner| Node::Scalar(Cow::Borrowed(inner))),
            b'"' => serde_json::from_str::<Cow<'a, str>>(text)
                .ok()
                .map(Node::Scalar),
            b'n' => Some(Node::Scalar(Cow::Borrowed(""))),
            // Numbers, `true` and `false`: their text is their value.
            _ => Some(Node::Scalar(Cow::Borrowed(text))),
        }
    }

    /// The member or item that `part` names: a key, or an index into an array.
    pub fn child(&self, part: &str) -> Option<&'a RawValue> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == part).map(|(_, v)| *v),
            Node::Array(items) => items.get(part.parse::<usize>().ok()?).copied(),
            Node::Scalar(_) => None,
        }
    }

    /// What a dotted path (`fields.author.username`, numeric parts index arrays)
    /// leads to from this value.
    pub fn lookup(&self, path: &str) -> Option<Lookup<'a>> {
        let mut parts = path.split('.');
        let mut current = self.child(parts.next()?)?;
        for part in parts {
            current = Node::of(current)?.child(part)?;
        }
        Some(match Node::of(current)? {
            Node::Object(_) => Lookup::Object,
            Node::Array(_) => Lookup::Array,
            Node::Scalar(text) => Lookup::Scalar(text),
        })
    }
}

/// An object's members in document order (a map type would sort or hash them).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Key<'a>>()? {
                    members.push((key.0, map.next_value::<&'a RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A key, borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// What a dotted path into an event leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A scalar, as its text (see [`Node::Scalar`]).
    Scalar(Cow<'a, str>),
    /// An object, which has no text of its own.
    Object,
    /// An array, which has no text of its own.
    Array,
}

impl Lookup<'_> {
    /// The scalar's text; objects and arrays have none.
    pub fn scalar_text(&self) -> Option<&str> {
        match self {
            Lookup::Scalar(text) => Some(text),
            Lookup::Object | Lookup::Array => None,
        }
    }
}

/// Calls `f` with the path parts and text of every scalar of `text`, in document
/// order, reading the text once. `text` is one JSON value already checked by
/// serde_json (so its nesting is bounded); what does not scan (which checked text
/// never does) ends the walk early.
///
/// Written by hand because reading it through serde would cost a pass per level
/// of nesting (each value taken as a `RawValue`, then read again): no decoder
/// walks a value once while keeping each number's text as written.
pub(super) fn for_each_scalar<'a>(
    text: &'a str,
    f: &mut impl FnMut(&[Cow<'a, str>], Cow<'a, str>),
) {
    let mut scanner = Scanner { text, pos: 0 };
    let _ = scanner.value(&mut Vec::new(), f);
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Takes `byte` (after white space), or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn value(
        &mut self,
        path: &mut Vec<Cow<'a, str>>,
        f: &mut impl FnMut(&[Cow<'a, str>], Cow<'a, str>),
    ) -> Option<()> {
        self.skip_space();
        match self.peek()? {
            b'{' => {
                if self.open(b'}')? {
                    return Some(());
                }
                loop {
                    self.skip_space();
                    let key = self.string()?;
                    self.expect(b':')?;
                    path.push(key);
                    self.value(path, f)?;
                    path.pop();
                    if !self.more(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                if self.open(b']')? {
                    return Some(());
                }
                for index in 0usize.. {
                    path.push(Cow::Owned(index.to_string()));
                    self.value(path, f)?;
                    path.pop();
                    if !self.more(b']')? {
                        break;
                    }
                }
                Some(())
            }
            b'"' => {
                let text = self.string()?;
                f(path, text);
                Some(())
            }
            _ => {
                // A number, `true`, `false` or `null`: up to the next delimiter.
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                let literal = self.text.get(start..self.pos)?;
                f(
                    path,
                    Cow::Borrowed(if literal == "null" { "" } else { literal }),
                );
                Some(())
            }
        }
    }

    /// Takes the opening bracket at the cursor; true when `close` follows at once.
    fn open(&mut self, close: u8) -> Option<bool> {
        self.pos += 1;
        self.skip_space();
        let empty = self.peek()? == close;
        if empty {
            self.pos += 1;
        }
        Some(empty)
    }

    /// After a member or item: true at a `,`, false at the `close` that ends it.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        let b = self.peek()?;
        self.pos += 1;
        match b {
            b',' => Some(true),
            b if b == close => Some(false),
            _ => None,
        }
    }

    /// A string at the cursor, unescaped; borrowed from the text when it has no escape.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        if escaped {
            serde_json::from_str::<String>(self.text.get(start..=i)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.text.get(start + 1..i).map(Cow::Borrowed)
        }
    }
}
