//! Reusable memory for the futures of exchanges in flight.
//!
//! A connection's task is as large as the largest state its future can be
//! in, and that is the middle of an exchange (forwarding, relaying: several
//! KiB of nested async state). Held inline, every idle connection would
//! carry that much for nothing. So the exchange's future runs in a block
//! taken from this per-worker free list and given back when it ends: an
//! idle connection's task keeps only a pointer to it, and steady state
//! allocates nothing, as boxing each exchange would.
//!
//! Blocks free for a whole [`TRIM_INTERVAL`](crate::buffers::TRIM_INTERVAL)
//! are let go, as the buffers are.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use crate::free_list::FreeList;

/// Free blocks of one worker (all of one layout in practice: one future
/// type runs here).
#[derive(Default)]
pub struct FutureSlots {
    free: FreeList<(NonNull<u8>, Layout)>,
}

impl FutureSlots {
    /// An empty free list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `future` in a block of its own: awaiting the result polls it
    /// there. The block goes back when the future finishes or is dropped.
    pub fn run<F: Future>(&self, future: F) -> InSlot<'_, F> {
        let layout = Layout::new::<F>();
        let block = self.take(layout).cast::<F>();
        // SAFETY: `block` is valid for writes of `F` (its layout), and
        // uninitialised until this write.
        unsafe { block.as_ptr().write(future) };
        InSlot {
            slots: self,
            block,
            live: true,
            _owns: PhantomData,
        }
    }

    fn take(&self, layout: Layout) -> NonNull<u8> {
        if layout.size() == 0 {
            return NonNull::dangling();
        }
        while let Some((block, had)) = self.free.pop_if(|_| true) {
            if had == layout {
                return block;
            }
            // SAFETY: allocated by `alloc` with `had`, and free.
            unsafe { dealloc(block.as_ptr(), had) };
        }
        // SAFETY: the layout's size is not zero.
        NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
    }

    fn give(&self, block: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            self.free.push((block, layout));
        }
    }

    /// Let go of the blocks that stayed free since the last trim; how many
    /// went.
    pub fn trim(&self) -> usize {
        self.free.trim(|(block, layout)| {
            // SAFETY: allocated by `alloc` with `layout`, and free.
            unsafe { dealloc(block.as_ptr(), layout) };
        })
    }

    /// Blocks free now.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

impl Drop for FutureSlots {
    fn drop(&mut self) {
        for (block, layout) in self.free.take_all() {
            // SAFETY: allocated by `alloc` with `layout`, and free.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

/// A future running in a block of [`FutureSlots`].
pub struct InSlot<'a, F: Future> {
    slots: &'a FutureSlots,
    block: NonNull<F>,
    /// `F` is in the block (not yet finished or dropped).
    live: bool,
    /// Owns an `F` (for the borrow and drop checkers).
    _owns: PhantomData<F>,
}

// The `F` is in its block, not in the `InSlot`: moving the `InSlot` moves
// only the pointer, so it may move even when `F` may not.
impl<F: Future> Unpin for InSlot<'_, F> {}

impl<F: Future> InSlot<'_, F> {
    fn finish(&mut self) {
        if std::mem::take(&mut self.live) {
            // SAFETY: the block holds a live `F`, dropped once (live is
            // now false), and never used again.
            unsafe { std::ptr::drop_in_place(self.block.as_ptr()) };
            self.slots.give(self.block.cast(), Layout::new::<F>());
        }
    }
}

impl<F: Future> Future for InSlot<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        assert!(self.live, "InSlot polled after it finished");
        // SAFETY: the `F` stays at this address until `finish` drops it
        // in place: it is pinned there.
        let future = unsafe { Pin::new_unchecked(&mut *self.block.as_ptr()) };
        let result = future.poll(cx);
        if result.is_ready() {
            self.finish();
        }
        result
    }
}

impl<F: Future> Drop for InSlot<'_, F> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Pending once (waking itself), then ready: a future that must be
    /// polled twice.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_future_runs_to_its_result_and_its_block_is_reused() {
        async fn work(byte: u8) -> usize {
            let big = [byte; 4096];
            yield_once().await;
            big.iter().map(|&b| b as usize).sum()
        }
        let slots = FutureSlots::new();
        assert_eq!(block_on(slots.run(work(7))), 7 * 4096);
        assert_eq!(slots.free_count(), 1, "the block came back");
        assert_eq!(block_on(slots.run(work(1))), 4096);
        assert_eq!(
            slots.free_count(),
            1,
            "and was taken again, not a second one"
        );
    }

    #[test]
    fn dropping_an_unfinished_future_drops_what_it_holds() {
        let slots = FutureSlots::new();
        let held = Rc::new(());
        let in_slot = slots.run({
            let held = Rc::clone(&held);
            async move {
                let _held = held;
                std::future::pending::<()>().await
            }
        });
        assert_eq!(Rc::strong_count(&held), 2);
        drop(in_slot);
        assert_eq!(Rc::strong_count(&held), 1, "the future was dropped");
        assert_eq!(slots.free_count(), 1);
    }

    #[test]
    fn a_trim_lets_go_of_blocks_unused_since_the_last() {
        let slots = FutureSlots::new();
        let a = slots.run(std::future::ready(1));
        let b = slots.run(std::future::ready(2));
        drop((a, b));
        slots.trim();
        assert_eq!(slots.free_count(), 2, "both were in use this interval");
        slots.trim();
        assert_eq!(slots.free_count(), 0);
        assert_eq!(slots.free.room(), 0, "nor the list's room");
    }
}
