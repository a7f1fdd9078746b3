//! 16-bit floating-point element types stored as their bit patterns.
//!
//! [`F16`] (IEEE 754 binary16) and [`Bf16`] (bfloat16) are `#[repr(transparent)]` wrappers
//! around `u16`, so a `&[u16]` of raw bits converts to a `&[F16]`/`&[Bf16]` without copying
//! ([`F16::from_bits_slice`]). Conversions from `f32` round to nearest, ties to even; NaN stays
//! NaN, values too large become infinity. Comparisons follow the floating-point value
//! (`-0 == +0`, `NaN != NaN`).

use std::cmp::Ordering;
use std::fmt;

/// Converts an `f32` to IEEE binary16 bits, rounding to nearest even.
fn f32_to_f16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;

    if exp == 0xff {
        // Infinity, or NaN (kept quiet and non-zero).
        let nan_bits = if man != 0 {
            0x0200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan_bits;
    }
    let half_exp = exp - 127 + 15;
    if half_exp >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exp <= 0 {
        // Subnormal (or zero) in binary16: value = full * 2^(exp - 150), unit 2^-24.
        let shift = (14 - half_exp) as u32;
        if shift > 24 {
            return sign;
        }
        let full = man | 0x0080_0000;
        let mut result = full >> shift;
        let rem = full & ((1u32 << shift) - 1);
        let halfway = 1u32 << (shift - 1);
        if rem > halfway || (rem == halfway && (result & 1) == 1) {
            result += 1;
        }
        return sign | result as u16;
    }
    let mut result = ((half_exp as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (result & 1) == 1) {
        result += 1; // may carry into the exponent, up to infinity: both correct
    }
    sign | result as u16
}

/// Converts IEEE binary16 bits to `f32` (exact).
fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = ((bits & 0x8000) as u32) << 16;
    let exp = ((bits >> 10) & 0x1f) as u32;
    let man = (bits & 0x03ff) as u32;
    match exp {
        0 => {
            let magnitude = man as f32 * (1.0 / 16_777_216.0); // man * 2^-24, exact
            if sign != 0 {
                -magnitude
            } else {
                magnitude
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// Converts an `f32` to bfloat16 bits, rounding to nearest even.
fn f32_to_bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

macro_rules! half_type {
    ($name:ident, $doc:literal, $to:ident, $from:ident) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Default)]
        #[repr(transparent)]
        pub struct $name(u16);

        impl $name {
            /// Positive zero.
            pub const ZERO: $name = $name(0);

            /// Wraps raw bits.
            pub const fn from_bits(bits: u16) -> $name {
                $name(bits)
            }

            /// The raw bits.
            pub const fn to_bits(self) -> u16 {
                self.0
            }

            /// Rounds an `f32` to this format (nearest, ties to even).
            pub fn from_f32(value: f32) -> $name {
                $name($from(value))
            }

            /// Rounds an `f64` to this format (through `f32`).
            pub fn from_f64(value: f64) -> $name {
                $name::from_f32(value as f32)
            }

            /// The value as `f32` (exact).
            pub fn to_f32(self) -> f32 {
                $to(self.0)
            }

            /// True for NaN.
            pub fn is_nan(self) -> bool {
                self.to_f32().is_nan()
            }

            /// Reinterprets a slice of raw bits without copying.
            pub fn from_bits_slice(bits: &[u16]) -> &[$name] {
                // SAFETY: $name is repr(transparent) over u16: same size, alignment, validity.
                unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<$name>(), bits.len()) }
            }

            /// Reinterprets a mutable slice of raw bits without copying.
            pub fn from_bits_slice_mut(bits: &mut [u16]) -> &mut [$name] {
                // SAFETY: as above; the borrow is exclusive.
                unsafe {
                    std::slice::from_raw_parts_mut(bits.as_mut_ptr().cast::<$name>(), bits.len())
                }
            }

            /// Views a slice of values as their raw bits without copying.
            pub fn as_bits_slice(values: &[$name]) -> &[u16] {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u16>(), values.len()) }
            }

            /// Converts a slice of `f32` (allocates).
            pub fn vec_from_f32(values: &[f32]) -> Vec<$name> {
                values.iter().map(|&v| $name::from_f32(v)).collect()
            }
        }

        impl From<f32> for $name {
            fn from(value: f32) -> $name {
                $name::from_f32(value)
            }
        }

        impl From<$name> for f32 {
            fn from(value: $name) -> f32 {
                value.to_f32()
            }
        }

        impl From<$name> for f64 {
            fn from(value: $name) -> f64 {
                value.to_f32() as f64
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                self.to_f32() == other.to_f32()
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &$name) -> Option<Ordering> {
                self.to_f32().partial_cmp(&other.to_f32())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.to_f32(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.to_f32(), f)
            }
        }
    };
}

half_type!(
    F16,
    "An IEEE 754 binary16 value (`UMFA_DTYPE_F16`), stored as its bits.\n\n```\nuse umfa::F16;\nlet x = F16::from_f32(1.5);\nassert_eq!(x.to_bits(), 0x3e00);\nassert_eq!(f32::from(x), 1.5);\n```",
    f16_bits_to_f32,
    f32_to_f16_bits
);

half_type!(
    Bf16,
    "A bfloat16 value (`UMFA_DTYPE_BF16`), stored as its bits.\n\n```\nuse umfa::Bf16;\nlet x = Bf16::from_f32(1.5);\nassert_eq!(x.to_bits(), 0x3fc0);\nassert_eq!(x.to_f32(), 1.5);\n```",
    bf16_bits_to_f32,
    f32_to_bf16_bits
);

fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_non_nan_pattern() {
        for bits in 0..=u16::MAX {
            let value = f16_bits_to_f32(bits);
            if value.is_nan() {
                assert!(f16_bits_to_f32(f32_to_f16_bits(value)).is_nan());
            } else {
                assert_eq!(f32_to_f16_bits(value), bits, "pattern {bits:#06x}");
            }
        }
    }

    #[test]
    fn f16_rounding() {
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16_bits(1e10), 0x7c00);
        assert_eq!(f32_to_f16_bits(-1e10), 0xfc00);
        assert_eq!(f32_to_f16_bits(5.960_464_5e-8), 0x0001); // 2^-24
        assert_eq!(f32_to_f16_bits(2.980_232_2e-8), 0x0000); // 2^-25: tie to even (0)
        assert_eq!(f32_to_f16_bits(4.0e-8), 0x0001);
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00); // tie, even stays
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 / 2048.0), 0x3c02); // tie, odd rounds up
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, odd
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
        for bits in 0..=u16::MAX {
            let value = bf16_bits_to_f32(bits);
            if !value.is_nan() {
                assert_eq!(f32_to_bf16_bits(value), bits);
            }
        }
    }
}
