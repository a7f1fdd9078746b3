//! Status codes and the crate's error type.

use std::ffi::CStr;
use std::fmt;

use umfa_sys as sys;

/// A non-OK status code of the C ABI (`UMFA_STATUS_*`).
///
/// The ABI may add codes in later releases; those arrive as [`Status::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The context argument was NULL.
    NullContext,
    /// A required pointer argument was NULL.
    NullPointer,
    /// An argument's value is out of its allowed range.
    InvalidArgument,
    /// A tensor has the wrong rank for its role.
    InvalidRank,
    /// Tensor shapes disagree with each other.
    ShapeMismatch,
    /// The query head count is not a multiple of the key/value head count.
    HeadsNotDivisible,
    /// head_dim is outside `1..=256` or unsupported by the backend.
    HeadDimOutOfRange,
    /// A stride is negative, or an output's strides make elements overlap.
    InvalidStride,
    /// A dtype is unknown or not allowed for that tensor's role.
    UnsupportedDtype,
    /// A tensor lives on a device the context does not run on.
    DeviceMismatch,
    /// An option struct's `struct_size` is not one the library knows.
    StructVersion,
    /// A size computation overflows.
    SizeOverflow,
    /// Memory could not be allocated.
    OutOfMemory,
    /// The requested backend is not available.
    BackendUnavailable,
    /// A valid combination of options that the backend does not implement.
    Unsupported,
    /// The backend failed while running.
    BackendError,
    /// The call needs more scratch memory than the context's workspace limit allows.
    WorkspaceLimit,
    /// `cu_seqlens` contents are invalid.
    InvalidSeqlens,
    /// A handle is not valid for this use.
    InvalidHandle,
    /// A bug in umfa.
    Internal,
    /// A code this version of the crate does not know.
    Unknown(i32),
}

impl Status {
    /// Maps a C status code to a `Status`; `None` for `UMFA_STATUS_OK` (0).
    pub fn from_code(code: i32) -> Option<Status> {
        use Status::*;
        let known = [
            NullContext,
            NullPointer,
            InvalidArgument,
            InvalidRank,
            ShapeMismatch,
            HeadsNotDivisible,
            HeadDimOutOfRange,
            InvalidStride,
            UnsupportedDtype,
            DeviceMismatch,
            StructVersion,
            SizeOverflow,
            OutOfMemory,
            BackendUnavailable,
            Unsupported,
            BackendError,
            WorkspaceLimit,
            InvalidSeqlens,
            InvalidHandle,
            Internal,
        ];
        match code {
            0 => None,
            1..=20 => Some(known[(code - 1) as usize]),
            other => Some(Unknown(other)),
        }
    }

    /// The C status code (`UMFA_STATUS_*`).
    pub fn code(self) -> i32 {
        use Status::*;
        let code = match self {
            NullContext => sys::UMFA_STATUS_NULL_CONTEXT,
            NullPointer => sys::UMFA_STATUS_NULL_POINTER,
            InvalidArgument => sys::UMFA_STATUS_INVALID_ARGUMENT,
            InvalidRank => sys::UMFA_STATUS_INVALID_RANK,
            ShapeMismatch => sys::UMFA_STATUS_SHAPE_MISMATCH,
            HeadsNotDivisible => sys::UMFA_STATUS_HEADS_NOT_DIVISIBLE,
            HeadDimOutOfRange => sys::UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE,
            InvalidStride => sys::UMFA_STATUS_INVALID_STRIDE,
            UnsupportedDtype => sys::UMFA_STATUS_UNSUPPORTED_DTYPE,
            DeviceMismatch => sys::UMFA_STATUS_DEVICE_MISMATCH,
            StructVersion => sys::UMFA_STATUS_STRUCT_VERSION,
            SizeOverflow => sys::UMFA_STATUS_SIZE_OVERFLOW,
            OutOfMemory => sys::UMFA_STATUS_OUT_OF_MEMORY,
            BackendUnavailable => sys::UMFA_STATUS_BACKEND_UNAVAILABLE,
            Unsupported => sys::UMFA_STATUS_UNSUPPORTED,
            BackendError => sys::UMFA_STATUS_BACKEND_ERROR,
            WorkspaceLimit => sys::UMFA_STATUS_WORKSPACE_LIMIT,
            InvalidSeqlens => sys::UMFA_STATUS_INVALID_SEQLENS,
            InvalidHandle => sys::UMFA_STATUS_INVALID_HANDLE,
            Internal => sys::UMFA_STATUS_INTERNAL,
            Unknown(code) => return code,
        };
        code as i32
    }

    /// The library's static description of the status (`umfa_status_string`).
    pub fn description(self) -> &'static str {
        // SAFETY: umfa_status_string returns a static NUL-terminated string for any value.
        unsafe { static_str(sys::umfa_status_string(self.code())) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The error type of every fallible call in this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The native library returned a non-OK status; `message` is its detailed message (the
    /// call's own for attention calls, even when other calls on the same `Context` fail at the
    /// same time; otherwise `umfa_last_error`).
    Native {
        /// The status code.
        status: Status,
        /// The library's message for this failure.
        message: String,
    },
    /// This crate rejected an argument before calling the library, e.g. a tensor view that
    /// does not fit in its slice. `status` is the code the library uses for the same kind of
    /// problem.
    InvalidView {
        /// The status code.
        status: Status,
        /// What was wrong.
        message: String,
    },
    /// The loaded libumfa implements a different ABI version than this crate was written for.
    AbiMismatch {
        /// The ABI version of these bindings.
        expected: u32,
        /// The ABI version of the loaded library.
        found: u32,
    },
    /// A classic (`mfa_*`) call failed with an `MFA_ERROR_*` code.
    Classic {
        /// The classic error code (`MFA_ERROR_*`).
        code: i32,
        /// The library's detailed message for the failure.
        message: String,
    },
}

impl Error {
    /// The status code of this error (classic codes are mapped to the nearest status).
    pub fn status(&self) -> Status {
        match self {
            Error::Native { status, .. } | Error::InvalidView { status, .. } => *status,
            Error::AbiMismatch { .. } => Status::BackendUnavailable,
            Error::Classic { code, .. } => match *code as u32 {
                sys::MFA_ERROR_INVALID_ARGS => Status::InvalidArgument,
                sys::MFA_ERROR_MEMORY_ALLOCATION => Status::OutOfMemory,
                sys::MFA_ERROR_DEVICE_NOT_SUPPORTED => Status::BackendUnavailable,
                _ => Status::BackendError,
            },
        }
    }

    /// The detailed message.
    pub fn message(&self) -> String {
        match self {
            Error::Native { message, .. }
            | Error::InvalidView { message, .. }
            | Error::Classic { message, .. } => message.clone(),
            Error::AbiMismatch { expected, found } => format!(
                "libumfa implements ABI version {found}, these bindings need version {expected}"
            ),
        }
    }

    pub(crate) fn view(status: Status, message: impl Into<String>) -> Error {
        Error::InvalidView {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Classic { code, message } => {
                // SAFETY: mfa_error_string returns a static string for any code.
                let name = unsafe { static_str(sys::mfa_error_string(*code)) };
                if message.is_empty() {
                    write!(f, "{name} (classic error {code})")
                } else {
                    write!(f, "{message} (classic error {code}: {name})")
                }
            }
            other => {
                let status = other.status();
                let message = other.message();
                if message.is_empty() {
                    write!(f, "{}", status.description())
                } else {
                    write!(f, "{message} [status {}]", status.code())
                }
            }
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts a static C string from the library to `&'static str` (lossy bytes become "").
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that lives forever.
pub(crate) unsafe fn static_str(ptr: *const std::os::raw::c_char) -> &'static str {
    if ptr.is_null() {
        return "";
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(ptr) }.to_str().unwrap_or("")
}

/// Copies the message of the last failure on `context` (or on this thread for NULL).
pub(crate) fn last_error(context: *const sys::umfa_context) -> String {
    // SAFETY: umfa_last_error accepts NULL and any live context; the returned string stays
    // valid until this thread's next umfa call, and it is copied before that.
    unsafe {
        let ptr = sys::umfa_last_error(context);
        if ptr.is_null() {
            return String::new();
        }
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Turns a C status into `Ok(())` or an [`Error::Native`] carrying the context's message.
pub(crate) fn check(status: sys::umfa_status, context: *const sys::umfa_context) -> Result<()> {
    match Status::from_code(status) {
        None => Ok(()),
        Some(status) => Err(Error::Native {
            status,
            message: last_error(context),
        }),
    }
}
