//! Tensor views: a slice plus shape and strides, checked to fit inside the slice.

use std::marker::PhantomData;
use std::os::raw::c_void;

use umfa_sys as sys;

use crate::error::{Error, Result, Status};
use crate::half::{Bf16, F16};

/// Element types of the C ABI (`UMFA_DTYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit float.
    F32,
    /// IEEE binary16 ([`F16`]).
    F16,
    /// bfloat16 ([`Bf16`]).
    Bf16,
    /// One byte, 0 = masked out, nonzero = attend (boolean masks only).
    Bool,
    /// 32-bit signed integer (`cu_seqlens` only).
    I32,
}

impl DType {
    /// The C value (`UMFA_DTYPE_*`).
    pub fn code(self) -> i32 {
        (match self {
            DType::F32 => sys::UMFA_DTYPE_F32,
            DType::F16 => sys::UMFA_DTYPE_F16,
            DType::Bf16 => sys::UMFA_DTYPE_BF16,
            DType::Bool => sys::UMFA_DTYPE_BOOL,
            DType::I32 => sys::UMFA_DTYPE_I32,
        }) as i32
    }

    /// The dtype for a C value, if known.
    pub fn from_code(code: i32) -> Option<DType> {
        match u32::try_from(code).ok()? {
            sys::UMFA_DTYPE_F32 => Some(DType::F32),
            sys::UMFA_DTYPE_F16 => Some(DType::F16),
            sys::UMFA_DTYPE_BF16 => Some(DType::Bf16),
            sys::UMFA_DTYPE_BOOL => Some(DType::Bool),
            sys::UMFA_DTYPE_I32 => Some(DType::I32),
            _ => None,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::Bool => 1,
        }
    }
}

/// Where a tensor's memory lives (`UMFA_DEVICE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    /// Host memory.
    Cpu,
    /// CUDA device memory on the given ordinal.
    Cuda(i32),
}

impl Device {
    pub(crate) fn from_raw(device: i32, index: i32) -> Device {
        if device == sys::UMFA_DEVICE_CUDA as i32 {
            Device::Cuda(index)
        } else {
            Device::Cpu
        }
    }

    pub(crate) fn to_raw(self) -> (i32, i32) {
        match self {
            Device::Cpu => (sys::UMFA_DEVICE_CPU as i32, 0),
            Device::Cuda(index) => (sys::UMFA_DEVICE_CUDA as i32, index),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for crate::F16 {}
    impl Sealed for crate::Bf16 {}
    impl Sealed for bool {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
}

/// A Rust type that a tensor view can hold: `f32`, [`F16`], [`Bf16`] (attention data),
/// `bool` or `u8` (boolean masks, `UMFA_DTYPE_BOOL`) and `i32` (`cu_seqlens`).
/// Sealed: its layout must match the C dtype exactly.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The matching C dtype.
    const DTYPE: DType;
}

/// The element types the library may write: `f32`, [`F16`] and [`Bf16`]. Output views
/// ([`TensorViewMut`]) only hold these, so the library never writes a byte pattern that is not a
/// valid value of the slice's type.
pub trait Float: Element {}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for F16 {
    const DTYPE: DType = DType::F16;
}
impl Element for Bf16 {
    const DTYPE: DType = DType::Bf16;
}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
}
impl Element for u8 {
    const DTYPE: DType = DType::Bool;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Float for f32 {}
impl Float for F16 {}
impl Float for Bf16 {}

/// Row-major (C-contiguous) strides for `shape`, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0usize; shape.len()];
    let mut running = 1usize;
    for (stride, &extent) in strides.iter_mut().zip(shape).rev() {
        *stride = running;
        running = running.saturating_mul(extent.max(1));
    }
    strides
}

/// Checks shape/strides and fills a C view. `len` is the number of elements addressable
/// from `data` (`None` skips the bounds check, for raw views).
fn make_raw(
    data: *mut c_void,
    dtype: DType,
    device: Device,
    shape: &[usize],
    strides: &[usize],
    len: Option<usize>,
) -> Result<sys::umfa_tensor> {
    let max_rank = sys::UMFA_MAX_RANK as usize;
    if shape.len() > max_rank {
        return Err(Error::view(
            Status::InvalidRank,
            format!("rank {} exceeds the maximum rank {max_rank}", shape.len()),
        ));
    }
    if strides.len() != shape.len() {
        return Err(Error::view(
            Status::InvalidArgument,
            format!(
                "{} strides given for a rank-{} shape",
                strides.len(),
                shape.len()
            ),
        ));
    }
    let overflow = || Error::view(Status::SizeOverflow, "view extent overflows");
    let mut raw_shape = [0i64; 4];
    let mut raw_strides = [0i64; 4];
    let mut empty = false;
    // Index of the last element the view addresses.
    let mut last = 0usize;
    for (i, (&extent, &stride)) in shape.iter().zip(strides).enumerate() {
        raw_shape[i] = i64::try_from(extent).map_err(|_| overflow())?;
        raw_strides[i] = i64::try_from(stride).map_err(|_| overflow())?;
        if extent == 0 {
            empty = true;
        } else {
            let span = (extent - 1).checked_mul(stride).ok_or_else(overflow)?;
            last = last.checked_add(span).ok_or_else(overflow)?;
        }
    }
    if !empty {
        // Byte offsets must fit in isize for the library's pointer arithmetic.
        let bytes = last
            .checked_add(1)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(overflow)?;
        if bytes > isize::MAX as usize {
            return Err(overflow());
        }
        if let Some(len) = len {
            if last >= len {
                return Err(Error::view(
                    Status::InvalidArgument,
                    format!(
                        "view with shape {shape:?} and strides {strides:?} reaches element {last}, \
                         but the slice has {len} elements"
                    ),
                ));
            }
        }
    }
    let (device, device_index) = device.to_raw();
    Ok(sys::umfa_tensor {
        data,
        dtype: dtype.code(),
        device,
        device_index,
        rank: shape.len() as i32,
        shape: raw_shape,
        strides: raw_strides,
    })
}

/// Checks that a view of `shape`/`strides` fits in `len` elements of `dtype`.
pub(crate) fn check_fits(
    dtype: DType,
    shape: &[usize],
    strides: &[usize],
    len: usize,
) -> Result<()> {
    make_raw(
        std::ptr::null_mut(),
        dtype,
        Device::Cpu,
        shape,
        strides,
        Some(len),
    )
    .map(|_| ())
}

/// Rejects output views whose elements could overlap (two indices, one address).
///
/// Sufficient condition: after sorting the non-trivial dimensions by stride, each stride is
/// larger than the furthest offset reachable with the smaller ones.
fn check_no_overlap(raw: &sys::umfa_tensor) -> Result<()> {
    let rank = raw.rank as usize;
    if raw.shape[..rank].contains(&0) {
        return Ok(());
    }
    let mut dims: Vec<(i64, i64)> = (0..rank)
        .filter(|&i| raw.shape[i] > 1)
        .map(|i| (raw.strides[i], raw.shape[i]))
        .collect();
    dims.sort_unstable();
    let mut reach: i64 = 0; // furthest offset reachable with the dimensions seen so far
    for (stride, extent) in dims {
        if stride <= reach {
            return Err(Error::view(
                Status::InvalidStride,
                "output view's strides make elements overlap",
            ));
        }
        reach += stride * (extent - 1);
    }
    Ok(())
}

fn permute_raw(raw: &sys::umfa_tensor, axes: &[usize]) -> Result<sys::umfa_tensor> {
    let rank = raw.rank as usize;
    let mut seen = [false; 4];
    if axes.len() != rank
        || axes
            .iter()
            .any(|&a| a >= rank || std::mem::replace(&mut seen[a], true))
    {
        return Err(Error::view(
            Status::InvalidArgument,
            format!("axes {axes:?} are not a permutation of 0..{rank}"),
        ));
    }
    let mut out = *raw;
    for (i, &a) in axes.iter().enumerate() {
        out.shape[i] = raw.shape[a];
        out.strides[i] = raw.strides[a];
    }
    Ok(out)
}

/// A read-only strided view of a slice (an input tensor of the C ABI).
///
/// The constructors check that every element the shape and strides address lies inside the
/// slice, so the library can never read past it. The view borrows the slice for `'a`.
///
/// ```
/// use umfa::TensorView;
/// let data = vec![0.0f32; 2 * 3 * 4 * 8];
/// // [batch, seqlen, heads, head_dim], contiguous
/// let q = TensorView::new(&data, &[2, 3, 4, 8])?;
/// assert_eq!(q.shape(), &[2, 3, 4, 8]);
/// // A view that does not fit is refused:
/// assert!(TensorView::new(&data, &[2, 3, 4, 9]).is_err());
/// # Ok::<(), umfa::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    raw: sys::umfa_tensor,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a TensorView is a shared borrow of data that is Sync (every Element is), like &[T].
unsafe impl Send for TensorView<'_> {}
// SAFETY: as above.
unsafe impl Sync for TensorView<'_> {}

impl<'a> TensorView<'a> {
    /// A dense row-major view of `data` with `shape`.
    pub fn new<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        Self::with_strides(data, shape, &contiguous_strides(shape))
    }

    /// A view of `data` with explicit strides (in elements; 0 broadcasts a dimension).
    pub fn with_strides<T: Element>(
        data: &'a [T],
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let raw = make_raw(
            data.as_ptr() as *mut c_void,
            T::DTYPE,
            Device::Cpu,
            shape,
            strides,
            Some(data.len()),
        )?;
        Ok(TensorView {
            raw,
            _borrow: PhantomData,
        })
    }

    /// A view of memory this crate cannot check, e.g. a CUDA device pointer from another
    /// library. Shape and strides are still validated (rank, overflow); bounds are not.
    ///
    /// # Safety
    /// For the lifetime `'a`, every element the view addresses must be readable memory on
    /// `device`, holding values of `dtype`, and not written by anyone else while the library
    /// reads it.
    pub unsafe fn from_raw_parts(
        data: *const c_void,
        dtype: DType,
        device: Device,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let raw = make_raw(data as *mut c_void, dtype, device, shape, strides, None)?;
        Ok(TensorView {
            raw,
            _borrow: PhantomData,
        })
    }

    /// The same data with dimensions reordered: dimension `i` of the result is dimension
    /// `axes[i]` of `self` (zero-copy). For example a `[batch, heads, seqlen, head_dim]`
    /// (PyTorch BHSD) view `.permuted(&[0, 2, 1, 3])` is the `[batch, seqlen, heads, head_dim]`
    /// view the attention calls expect.
    pub fn permuted(&self, axes: &[usize]) -> Result<Self> {
        Ok(TensorView {
            raw: permute_raw(&self.raw, axes)?,
            _borrow: PhantomData,
        })
    }

    /// The extents, one per dimension.
    pub fn shape(&self) -> &[i64] {
        &self.raw.shape[..self.raw.rank as usize]
    }

    /// The strides in elements, one per dimension.
    pub fn strides(&self) -> &[i64] {
        &self.raw.strides[..self.raw.rank as usize]
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_code(self.raw.dtype).expect("views are built from known dtypes")
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        Device::from_raw(self.raw.device, self.raw.device_index)
    }

    /// The C view (valid while `'a` lasts).
    pub fn as_raw(&self) -> &sys::umfa_tensor {
        &self.raw
    }
}

impl std::fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorView")
            .field("dtype", &self.dtype())
            .field("device", &self.device())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .finish()
    }
}

/// A writable strided view of a mutable slice (an output tensor of the C ABI).
///
/// Besides fitting in the slice, the strides must not make two elements share an address.
/// Only float element types ([`Float`]) can be written.
///
/// ```
/// use umfa::TensorViewMut;
/// let mut out = vec![0.0f32; 1 * 4 * 2 * 8];
/// let view = TensorViewMut::new(&mut out, &[1, 4, 2, 8])?;
/// assert_eq!(view.shape(), &[1, 4, 2, 8]);
/// // Broadcasting (stride 0) is fine for inputs, but not for outputs:
/// assert!(TensorViewMut::with_strides(&mut out, &[1, 4, 2, 8], &[0, 0, 8, 1]).is_err());
/// # Ok::<(), umfa::Error>(())
/// ```
pub struct TensorViewMut<'a> {
    raw: sys::umfa_tensor,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: an exclusive borrow of Send data, like &mut [T].
unsafe impl Send for TensorViewMut<'_> {}
// SAFETY: shared access to a TensorViewMut only reads its metadata.
unsafe impl Sync for TensorViewMut<'_> {}

impl<'a> TensorViewMut<'a> {
    /// A dense row-major view of `data` with `shape`.
    pub fn new<T: Float>(data: &'a mut [T], shape: &[usize]) -> Result<Self> {
        Self::with_strides(data, shape, &contiguous_strides(shape))
    }

    /// A view of `data` with explicit strides (in elements); elements must not overlap.
    pub fn with_strides<T: Float>(
        data: &'a mut [T],
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let raw = make_raw(
            data.as_mut_ptr().cast::<c_void>(),
            T::DTYPE,
            Device::Cpu,
            shape,
            strides,
            Some(data.len()),
        )?;
        check_no_overlap(&raw)?;
        Ok(TensorViewMut {
            raw,
            _borrow: PhantomData,
        })
    }

    /// A writable view of memory this crate cannot check (e.g. CUDA device memory).
    ///
    /// # Safety
    /// For the lifetime `'a`, every element the view addresses must be writable memory on
    /// `device` that nothing else reads or writes, and `dtype` must be a float type.
    pub unsafe fn from_raw_parts(
        data: *mut c_void,
        dtype: DType,
        device: Device,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let raw = make_raw(data, dtype, device, shape, strides, None)?;
        check_no_overlap(&raw)?;
        Ok(TensorViewMut {
            raw,
            _borrow: PhantomData,
        })
    }

    /// The same data with dimensions reordered (see [`TensorView::permuted`]).
    pub fn permuted(self, axes: &[usize]) -> Result<Self> {
        Ok(TensorViewMut {
            raw: permute_raw(&self.raw, axes)?,
            _borrow: PhantomData,
        })
    }

    /// A read-only view of the same data, borrowing this one.
    pub fn as_view(&self) -> TensorView<'_> {
        TensorView {
            raw: self.raw,
            _borrow: PhantomData,
        }
    }

    /// The extents, one per dimension.
    pub fn shape(&self) -> &[i64] {
        &self.raw.shape[..self.raw.rank as usize]
    }

    /// The strides in elements, one per dimension.
    pub fn strides(&self) -> &[i64] {
        &self.raw.strides[..self.raw.rank as usize]
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_code(self.raw.dtype).expect("views are built from known dtypes")
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        Device::from_raw(self.raw.device, self.raw.device_index)
    }

    /// The C view (valid while `'a` lasts).
    pub fn as_raw(&self) -> &sys::umfa_tensor {
        &self.raw
    }
}

impl std::fmt::Debug for TensorViewMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorViewMut")
            .field("dtype", &self.dtype())
            .field("device", &self.device())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn bounds() {
        let data = [0f32; 24];
        assert!(TensorView::new(&data, &[2, 3, 4]).is_ok());
        assert!(TensorView::new(&data, &[2, 3, 5]).is_err());
        assert!(TensorView::new(&data, &[0, 100, 100]).is_ok()); // empty
        assert!(TensorView::with_strides(&data, &[1000, 4], &[0, 1]).is_ok()); // broadcast
        let e = TensorView::with_strides(&data, &[2, 2], &[usize::MAX, 1]).unwrap_err();
        assert_eq!(e.status(), Status::SizeOverflow);
        let e = TensorView::new(&data, &[1, 1, 1, 1, 24]).unwrap_err();
        assert_eq!(e.status(), Status::InvalidRank);
    }

    #[test]
    fn overlap() {
        let mut data = [0f32; 24];
        assert!(TensorViewMut::with_strides(&mut data, &[2, 3, 4], &[1, 8, 2]).is_ok());
        assert!(TensorViewMut::with_strides(&mut data, &[3, 4], &[4, 1]).is_ok());
        assert!(TensorViewMut::with_strides(&mut data, &[3, 4], &[3, 1]).is_err());
        assert!(TensorViewMut::with_strides(&mut data, &[3, 4], &[1, 0]).is_err());
        assert!(TensorViewMut::with_strides(&mut data, &[1, 4], &[0, 1]).is_ok());
    }

    #[test]
    fn permute() {
        let data = [0f32; 24];
        let v = TensorView::new(&data, &[1, 2, 3, 4]).unwrap();
        let p = v.permuted(&[0, 2, 1, 3]).unwrap();
        assert_eq!(p.shape(), &[1, 3, 2, 4]);
        assert_eq!(p.strides(), &[24, 4, 12, 1]);
        assert!(v.permuted(&[0, 0, 1, 2]).is_err());
    }
}
