//! Memory owned by the library (`umfa_buffer`), for callers without an allocator of their own
//! for the context's device (e.g. CUDA).

use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr::NonNull;

use umfa_sys as sys;

use crate::context::Context;
use crate::error::{check, Error, Result, Status};
use crate::tensor::{contiguous_strides, Device, Element, Float, TensorView, TensorViewMut};

/// A buffer on a context's device: allocated by the library (zero-filled, 64-byte aligned) or
/// wrapping a caller's host slice. Borrows its context, so it cannot outlive it.
///
/// ```
/// use umfa::{Backend, Context};
/// let ctx = Context::new(Backend::Cpu)?;
/// let mut buf = ctx.create_buffer(16)?;
/// buf.upload(0, &[1.0f32, 2.0, 3.0, 4.0])?;
/// let mut back = [0.0f32; 4];
/// buf.download(0, &mut back)?;
/// assert_eq!(back, [1.0, 2.0, 3.0, 4.0]);
/// let view = buf.view::<f32>(&[2, 2])?; // a tensor view of the buffer's memory
/// assert_eq!(view.shape(), &[2, 2]);
/// # Ok::<(), umfa::Error>(())
/// ```
#[derive(Debug)]
pub struct Buffer<'a> {
    raw: NonNull<sys::umfa_buffer>,
    size: u64,
    device: Device,
    _borrow: PhantomData<(&'a Context, &'a mut [u8])>,
}

// SAFETY: the buffer is plain memory plus a handle; &self methods only read it.
unsafe impl Send for Buffer<'_> {}
// SAFETY: as above.
unsafe impl Sync for Buffer<'_> {}

impl Context {
    /// Allocates `size_bytes` (> 0) of zero-filled memory on this context's device.
    pub fn create_buffer(&self, size_bytes: u64) -> Result<Buffer<'_>> {
        let mut raw: *mut sys::umfa_buffer = std::ptr::null_mut();
        // SAFETY: live context, valid out-pointer.
        let status = unsafe { sys::umfa_buffer_create(self.as_raw(), size_bytes, &mut raw) };
        check(status, self.as_raw())?;
        Buffer::from_created(raw, self)
    }

    /// Wraps a host slice without copying (CPU contexts only). The buffer borrows the slice
    /// exclusively for its lifetime; destroying the buffer does not free the slice.
    pub fn wrap_buffer<'a, T: Float>(&'a self, data: &'a mut [T]) -> Result<Buffer<'a>> {
        let bytes = std::mem::size_of_val(data) as u64;
        let mut raw: *mut sys::umfa_buffer = std::ptr::null_mut();
        // SAFETY: `data` is valid for `bytes` and borrowed for the buffer's lifetime.
        let status = unsafe {
            sys::umfa_buffer_wrap(
                self.as_raw(),
                data.as_mut_ptr().cast::<c_void>(),
                bytes,
                &mut raw,
            )
        };
        check(status, self.as_raw())?;
        Buffer::from_created(raw, self)
    }
}

impl<'a> Buffer<'a> {
    fn from_created(raw: *mut sys::umfa_buffer, ctx: &'a Context) -> Result<Buffer<'a>> {
        let raw = NonNull::new(raw).ok_or_else(|| Error::Native {
            status: Status::Internal,
            message: "buffer creation returned OK and NULL".into(),
        })?;
        let mut size = 0u64;
        let mut device = 0i32;
        // SAFETY: live buffer, valid out-pointers.
        unsafe {
            check(sys::umfa_buffer_size(raw.as_ptr(), &mut size), ctx.as_raw())?;
            check(
                sys::umfa_buffer_device(raw.as_ptr(), &mut device),
                ctx.as_raw(),
            )?;
        }
        // The buffer lives on the context's device (its ordinal for CUDA).
        let device = Device::from_raw(device, ctx.device_index());
        Ok(Buffer {
            raw,
            size,
            device,
            _borrow: PhantomData,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.device
    }

    fn data_ptr(&self) -> *mut c_void {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: live buffer, valid out-pointer; cannot fail for a live buffer.
        unsafe { sys::umfa_buffer_data(self.raw.as_ptr(), &mut ptr) };
        ptr
    }

    fn host_ptr(&self) -> Option<*mut u8> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: live buffer, valid out-pointer.
        let status = unsafe { sys::umfa_buffer_contents(self.raw.as_ptr(), &mut ptr) };
        (status == 0 && !ptr.is_null()).then_some(ptr.cast::<u8>())
    }

    /// The bytes, when host-visible (CPU buffers); `None` for device-only memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        let ptr = self.host_ptr()?;
        // SAFETY: the buffer owns (or exclusively borrows) `size` host bytes; &self prevents
        // writes through this handle while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(ptr, self.size as usize) })
    }

    /// The bytes, mutably, when host-visible.
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        let ptr = self.host_ptr()?;
        // SAFETY: as above, with an exclusive borrow.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, self.size as usize) })
    }

    /// Copies `data` into the buffer starting at byte `offset`.
    pub fn upload<T: Element>(&mut self, offset: u64, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data) as u64;
        // SAFETY: `data` is readable for `bytes`; the library checks the range.
        let status = unsafe {
            sys::umfa_buffer_upload(
                self.raw.as_ptr(),
                offset,
                data.as_ptr().cast::<c_void>(),
                bytes,
            )
        };
        check(status, std::ptr::null())
    }

    /// Copies bytes starting at `offset` into `out` (whose element type must accept any bit
    /// pattern: floats, `i32`, `u8`).
    pub fn download<T: Element + AnyBits>(&self, offset: u64, out: &mut [T]) -> Result<()> {
        let bytes = std::mem::size_of_val(out) as u64;
        // SAFETY: `out` is writable for `bytes` and every bit pattern is a valid T.
        let status = unsafe {
            sys::umfa_buffer_download(
                self.raw.as_ptr(),
                offset,
                out.as_mut_ptr().cast::<c_void>(),
                bytes,
            )
        };
        check(status, std::ptr::null())
    }

    fn view_checks<T: Element>(&self) -> Result<usize> {
        let elements = self.size as usize / std::mem::size_of::<T>();
        if (self.data_ptr() as usize) % std::mem::align_of::<T>() != 0 {
            return Err(Error::view(
                Status::InvalidArgument,
                "buffer memory is not aligned for the element type",
            ));
        }
        Ok(elements)
    }

    /// A contiguous read-only tensor view of the buffer's memory (any device).
    pub fn view<T: AnyBits>(&self, shape: &[usize]) -> Result<TensorView<'_>> {
        self.view_strided::<T>(shape, &contiguous_strides(shape))
    }

    /// A strided read-only tensor view of the buffer's memory.
    pub fn view_strided<T: AnyBits>(
        &self,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<TensorView<'_>> {
        let elements = self.view_checks::<T>()?;
        let view = match self.device {
            Device::Cpu => {
                let ptr = self.data_ptr().cast::<T>();
                // SAFETY: the buffer holds `elements` properly aligned Ts worth of bytes. The
                // slice is only used as the bounds of the view (the library reads it).
                let slice = unsafe { std::slice::from_raw_parts(ptr.cast_const(), elements) };
                return TensorView::with_strides(slice, shape, strides);
            }
            device => {
                crate::tensor::check_fits(T::DTYPE, shape, strides, elements)?;
                // SAFETY: device memory owned by the buffer, bounds checked just above.
                unsafe {
                    TensorView::from_raw_parts(self.data_ptr(), T::DTYPE, device, shape, strides)?
                }
            }
        };
        Ok(view)
    }

    /// A contiguous writable tensor view of the buffer's memory (any device).
    pub fn view_mut<T: Float>(&mut self, shape: &[usize]) -> Result<TensorViewMut<'_>> {
        self.view_strided_mut::<T>(shape, &contiguous_strides(shape))
    }

    /// A strided writable tensor view of the buffer's memory.
    pub fn view_strided_mut<T: Float>(
        &mut self,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<TensorViewMut<'_>> {
        let elements = self.view_checks::<T>()?;
        match self.device {
            Device::Cpu => {
                let ptr = self.data_ptr().cast::<T>();
                // SAFETY: as in `view_strided`, with an exclusive borrow of the buffer. Any bit
                // pattern is a valid float.
                let slice = unsafe { std::slice::from_raw_parts_mut(ptr, elements) };
                TensorViewMut::with_strides(slice, shape, strides)
            }
            device => {
                crate::tensor::check_fits(T::DTYPE, shape, strides, elements)?;
                // SAFETY: device memory owned by the buffer, bounds checked, exclusive borrow.
                unsafe {
                    TensorViewMut::from_raw_parts(self.data_ptr(), T::DTYPE, device, shape, strides)
                }
            }
        }
    }

    /// The raw handle; it stays owned by `self`.
    pub fn as_raw(&self) -> *mut sys::umfa_buffer {
        self.raw.as_ptr()
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the buffer; the context outlives it (borrow).
        unsafe { sys::umfa_buffer_destroy(self.raw.as_ptr()) }
    }
}

/// Element types for which every bit pattern is a valid value (so bytes can be copied in).
pub trait AnyBits: Element {}
impl AnyBits for f32 {}
impl AnyBits for crate::F16 {}
impl AnyBits for crate::Bf16 {}
impl AnyBits for u8 {}
impl AnyBits for i32 {}
