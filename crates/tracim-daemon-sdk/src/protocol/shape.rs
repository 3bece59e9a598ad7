//! The shape check of a TLM on arrival: everything decoding it whole will need,
//! checked without building a tree of values.

use std::fmt;

use serde::Deserialize;

/// What the receive path checks of a TLM: exactly what decoding it into a
/// [`Tlm`] will need, without building any value. Every value, known key or
/// not, goes through `deserialize_any`, so serde_json's nesting limit and
/// number ranges hold here as they do when the TLM is decoded whole: an event
/// accepted now decodes later.
pub(super) struct TlmShape {
    pub(super) event_id: u64,
    pub(super) event_type: String,
}

impl<'de> Deserialize<'de> for TlmShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TlmShape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Tracim Live Message (an object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TlmShape, A::Error> {
                use serde::de::Error;
                let (mut event_id, mut event_type) = (None, None);
                let mut seen = [false; 5];
                while let Some(key) = map.next_key::<TlmKey>()? {
                    if let Some(i) = key.known() {
                        if std::mem::replace(&mut seen[i], true) {
                            return Err(A::Error::custom(format_args!(
                                "duplicate field `{}`",
                                TlmKey::NAMES[i]
                            )));
                        }
                    }
                    match key {
                        TlmKey::EventId => event_id = Some(map.next_value::<u64>()?),
                        TlmKey::EventType => event_type = Some(map.next_value::<String>()?),
                        TlmKey::Created | TlmKey::Read => {
                            map.next_value::<Option<String>>()?;
                        }
                        TlmKey::Fields => {
                            map.next_value::<AnyObject>()?;
                        }
                        TlmKey::Other => map.next_value_seed(Skip)?,
                    }
                }
                Ok(TlmShape {
                    event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
                    event_type: event_type.ok_or_else(|| A::Error::missing_field("event_type"))?,
                })
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A top-level key of a TLM, read without allocating.
#[derive(Clone, Copy)]
enum TlmKey {
    EventId,
    EventType,
    Created,
    Read,
    Fields,
    Other,
}

impl TlmKey {
    const NAMES: [&'static str; 5] = ["event_id", "event_type", "created", "read", "fields"];

    fn known(self) -> Option<usize> {
        (!matches!(self, TlmKey::Other)).then_some(self as usize)
    }
}

impl<'de> Deserialize<'de> for TlmKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TlmKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<TlmKey, E> {
                Ok(match key {
                    "event_id" => TlmKey::EventId,
                    "event_type" => TlmKey::EventType,
                    "created" => TlmKey::Created,
                    "read" => TlmKey::Read,
                    "fields" => TlmKey::Fields,
                    _ => TlmKey::Other,
                })
            }
        }
        d.deserialize_identifier(Visitor)
    }
}

/// A JSON object, its contents checked and dropped.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnyObject, A::Error> {
                while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    map.next_value_seed(Skip)?;
                }
                Ok(AnyObject)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Any JSON value, checked and dropped. Unlike `IgnoredAny` it goes through
/// `deserialize_any`, so serde_json's nesting limit holds here as it does when
/// the TLM is decoded whole: what is accepted now decodes later.
struct Skip;

impl<'de> serde::de::DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> serde::de::Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}
