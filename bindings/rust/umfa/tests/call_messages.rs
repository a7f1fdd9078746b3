//! Each failed call reports its own message, also when calls on one shared `Context` fail at
//! the same time on several threads. (The context's last-error message is the latest failure of
//! any thread; the binding passes a per-call buffer, `umfa_attention_options.error_message`.)

use std::sync::{Arc, Barrier};

use umfa::{AttentionOptions, Backend, Context, ContextOptions, Status, TensorView, TensorViewMut};

/// Runs `iterations` forward calls that must fail with `status`, each message containing `word`;
/// returns the messages that did not match.
fn failing_calls(
    ctx: &Context,
    q_shape: [usize; 4],
    kv_shape: [usize; 4],
    status: Status,
    word: &str,
    iterations: usize,
) -> Vec<String> {
    let q = vec![0.0f32; q_shape.iter().product()];
    let kv = vec![0.0f32; kv_shape.iter().product()];
    let mut out = vec![0.0f32; q.len()];
    let mut wrong = Vec::new();
    for _ in 0..iterations {
        let result = ctx.forward(
            &TensorView::new(&q, &q_shape).unwrap(),
            &TensorView::new(&kv, &kv_shape).unwrap(),
            &TensorView::new(&kv, &kv_shape).unwrap(),
            &mut TensorViewMut::new(&mut out, &q_shape).unwrap(),
            None,
            &AttentionOptions::default(),
        );
        match result {
            Err(e) if e.status() == status && e.message().contains(word) => {}
            Err(e) => wrong.push(e.to_string()),
            Ok(()) => wrong.push("the call succeeded".into()),
        }
    }
    wrong
}

#[test]
fn concurrent_failures_keep_their_own_messages() {
    let ctx = Arc::new(
        Context::with_options(&ContextOptions::new(Backend::Cpu).num_threads(1)).unwrap(),
    );
    let barrier = Arc::new(Barrier::new(2));
    let cases = [
        ([1, 4, 3, 8], [1, 4, 2, 8], Status::HeadsNotDivisible, "multiple"),
        ([1, 4, 2, 300], [1, 4, 2, 300], Status::HeadDimOutOfRange, "head_dim"),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(q, kv, status, word)| {
            let (ctx, barrier) = (Arc::clone(&ctx), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                failing_calls(&ctx, q, kv, status, word, 200_000)
            })
        })
        .collect();
    let wrong: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        wrong.is_empty(),
        "{} errors carried another call's message, e.g. {}",
        wrong.len(),
        wrong[0]
    );
}
