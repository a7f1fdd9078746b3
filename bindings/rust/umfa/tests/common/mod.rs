//! Test support: a small JSON parser and .npy reader (std only).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    pub fn get(&self, key: &str) -> &Json {
        static NULL: Json = Json::Null;
        match self {
            Json::Obj(m) => m.get(key).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn f64(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            Json::Bool(b) => *b as i32 as f64,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    pub fn i64(&self) -> i64 {
        self.f64() as i64
    }

    pub fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            Json::Num(n) => *n != 0.0,
            other => panic!("expected a boolean, got {other:?}"),
        }
    }

    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }

    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    pub fn usizes(&self) -> Vec<usize> {
        self.arr().iter().map(|v| v.i64() as usize).collect()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        let c = *self.s.get(self.i).ok_or("unexpected end of JSON")?;
        match c {
            b'{' => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let key = match self.value()? {
                        Json::Str(k) => k,
                        _ => return Err(format!("object key expected at byte {}", self.i)),
                    };
                    self.ws();
                    if !self.eat(":") {
                        return Err(format!("':' expected at byte {}", self.i));
                    }
                    let v = self.value()?;
                    m.insert(key, v);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Ok(Json::Obj(m));
                    }
                    return Err(format!("',' or '}}' expected at byte {}", self.i));
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Ok(Json::Arr(a));
                    }
                    return Err(format!("',' or ']' expected at byte {}", self.i));
                }
            }
            b'"' => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    let c = *self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    match c {
                        b'"' => return Ok(Json::Str(out)),
                        b'\\' => {
                            let e = *self.s.get(self.i).ok_or("bad escape")?;
                            self.i += 1;
                            match e {
                                b'n' => out.push('\n'),
                                b't' => out.push('\t'),
                                b'r' => out.push('\r'),
                                b'b' => out.push('\u{8}'),
                                b'f' => out.push('\u{c}'),
                                b'u' => {
                                    let hex = std::str::from_utf8(&self.s[self.i..self.i + 4])
                                        .map_err(|e| e.to_string())?;
                                    let code =
                                        u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                    self.i += 4;
                                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                                }
                                other => out.push(other as char),
                            }
                        }
                        _ => {
                            // Copy a UTF-8 sequence through unchanged.
                            let start = self.i - 1;
                            let mut end = self.i;
                            while end < self.s.len() && (self.s[end] & 0xc0) == 0x80 {
                                end += 1;
                            }
                            out.push_str(
                                std::str::from_utf8(&self.s[start..end])
                                    .map_err(|e| e.to_string())?,
                            );
                            self.i = end;
                        }
                    }
                }
            }
            b't' if self.eat("true") => Ok(Json::Bool(true)),
            b'f' if self.eat("false") => Ok(Json::Bool(false)),
            b'n' if self.eat("null") => Ok(Json::Null),
            b'N' if self.eat("NaN") => Ok(Json::Num(f64::NAN)),
            b'I' if self.eat("Infinity") => Ok(Json::Num(f64::INFINITY)),
            b'-' if self.eat("-Infinity") => Ok(Json::Num(f64::NEG_INFINITY)),
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse::<f64>()
                    .map(Json::Num)
                    .map_err(|_| format!("bad JSON value at byte {start}"))
            }
        }
    }
}

/// A .npy array: its descr, shape and raw little-endian bytes (C order).
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let pat = format!("'{key}'");
    let at = header
        .find(&pat)
        .ok_or_else(|| format!("npy header lacks {pat}"))?;
    let rest = header[at + pat.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or("npy: bad header")?
        .trim_start();
    let end = match rest.as_bytes().first() {
        Some(b'\'') => rest[1..].find('\'').map(|j| j + 2),
        Some(b'(') => rest.find(')').map(|j| j + 1),
        _ => rest.find([',', '}']),
    }
    .ok_or("npy: bad header")?;
    Ok(&rest[..end])
}

impl Npy {
    pub fn read(path: &Path) -> Result<Npy, String> {
        let all = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if all.len() < 10 || &all[..6] != b"\x93NUMPY" {
            return Err(format!("{}: not a .npy file", path.display()));
        }
        let (header_len, offset) = match all[6] {
            1 => (u16::from_le_bytes([all[8], all[9]]) as usize, 10),
            2 | 3 => (
                u32::from_le_bytes([all[8], all[9], all[10], all[11]]) as usize,
                12,
            ),
            v => return Err(format!("{}: unsupported .npy version {v}", path.display())),
        };
        let header =
            std::str::from_utf8(&all[offset..offset + header_len]).map_err(|e| e.to_string())?;
        let descr = header_value(header, "descr")?
            .trim_matches('\'')
            .to_string();
        if header_value(header, "fortran_order")?.trim() != "False" {
            return Err(format!(
                "{}: Fortran order is not supported",
                path.display()
            ));
        }
        let shape_text = header_value(header, "shape")?;
        let shape: Vec<usize> = shape_text
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let item: usize = descr[2..]
            .parse()
            .map_err(|_| format!("bad descr {descr}"))?;
        let count: usize = shape.iter().product();
        let data = &all[offset + header_len..];
        if data.len() < count * item {
            return Err(format!("{}: truncated data", path.display()));
        }
        Ok(Npy {
            descr,
            shape,
            bytes: data[..count * item].to_vec(),
        })
    }

    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    fn check(&self, descr: &str) {
        assert_eq!(self.descr, descr, "unexpected .npy dtype");
    }

    pub fn f32s(&self) -> Vec<f32> {
        self.check("<f4");
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    pub fn u16s(&self) -> Vec<u16> {
        assert!(
            self.descr == "<f2" || self.descr == "<u2",
            "descr {}",
            self.descr
        );
        self.bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    pub fn i32s(&self) -> Vec<i32> {
        self.check("<i4");
        self.bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    pub fn u8s(&self) -> Vec<u8> {
        assert!(
            self.descr == "|u1" || self.descr == "|b1",
            "descr {}",
            self.descr
        );
        self.bytes.clone()
    }
}
