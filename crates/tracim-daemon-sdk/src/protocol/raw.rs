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

    /// Calls `f` with the path parts and text of every scalar under this value,
    /// in document order.
    pub fn for_each_scalar(self, mut f: impl FnMut(&[Cow<'a, str>], Cow<'a, str>)) {
        walk(self, &mut Vec::new(), &mut f);
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

/// Calls `f` with the path parts and text of every scalar under `node`, in
/// document order. Each level reads its members' text once more; the whole text
/// is never read again from the start.
fn walk<'a>(
    node: Node<'a>,
    path: &mut Vec<Cow<'a, str>>,
    f: &mut impl FnMut(&[Cow<'a, str>], Cow<'a, str>),
) {
    match node {
        Node::Object(members) => {
            for (key, child) in members {
                path.push(key);
                if let Some(child) = Node::of(child) {
                    walk(child, path, f);
                }
                path.pop();
            }
        }
        Node::Array(items) => {
            for (index, child) in items.into_iter().enumerate() {
                path.push(Cow::Owned(index.to_string()));
                if let Some(child) = Node::of(child) {
                    walk(child, path, f);
                }
                path.pop();
            }
        }
        Node::Scalar(text) => f(path, text),
    }
}
