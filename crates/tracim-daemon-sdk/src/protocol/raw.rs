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
        let text = raw.get();
        match text.as_bytes().first()? {
            b'{' => {
                let mut de = serde_json::Deserializer::from_str(text);
                Some(Node::Object(Members::deserialize(&mut de).ok()?.0))
            }
            b'[' => serde_json::from_str::<Vec<&'a RawValue>>(text)
                .ok()
                .map(Node::Array),
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

/// Follows a dotted path (`fields.author.username`, `fields.content.tags.0`:
/// numeric parts index arrays) from `root`.
pub(super) fn lookup<'a>(root: &'a RawValue, path: &str) -> Option<Lookup<'a>> {
    let mut current = root;
    for part in path.split('.') {
        current = Node::of(current)?.child(part)?;
    }
    Some(match Node::of(current)? {
        Node::Object(_) => Lookup::Object,
        Node::Array(_) => Lookup::Array,
        Node::Scalar(text) => Lookup::Scalar(text),
    })
}

/// Calls `f` with the path parts and text of every scalar under `raw`, in
/// document order.
pub(super) fn walk<'a>(
    raw: &'a RawValue,
    path: &mut Vec<Cow<'a, str>>,
    f: &mut impl FnMut(&[Cow<'a, str>], Cow<'a, str>),
) {
    match Node::of(raw) {
        Some(Node::Object(members)) => {
            for (key, child) in members {
                path.push(key);
                walk(child, path, f);
                path.pop();
            }
        }
        Some(Node::Array(items)) => {
            for (index, child) in items.into_iter().enumerate() {
                path.push(Cow::Owned(index.to_string()));
                walk(child, path, f);
                path.pop();
            }
        }
        Some(Node::Scalar(text)) => f(path, text),
        None => {}
    }
}
