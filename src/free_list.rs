//! A worker's free list that lets go of what a quiet spell did not use.
//!
//! The buffer pool (`crate::buffers`) and the future slots
//! (`crate::slots`) keep what requests give back, so the next requests
//! take it again without allocating; neither may keep a burst's peak for
//! ever. So each trim (once a second, `worker::run_trimmer`) lets go of
//! as many items as stayed free through the whole interval (the list's
//! low-water mark: never needed), and of every item and the list's own
//! room too after an interval in which nothing was asked for at all (a
//! burst of 4 000 requests grew a list to 12 000 slots, 0.1 KiB per
//! connection that then idled).

use std::cell::{Cell, RefCell};

/// Free items of one worker, newest last.
pub struct FreeList<T> {
    items: RefCell<Vec<T>>,
    /// The fewest items left free since the last trim: that many were
    /// never needed in the interval.
    low_water: Cell<usize>,
    /// Whether an item was asked for since the last trim.
    taken: Cell<bool>,
}

impl<T> Default for FreeList<T> {
    fn default() -> Self {
        Self {
            items: RefCell::new(Vec::new()),
            low_water: Cell::new(0),
            taken: Cell::new(false),
        }
    }
}

impl<T> FreeList<T> {
    /// The item given back last, if `fits` it. Asked for, found or not:
    /// the interval had a request.
    pub fn pop_if(&self, fits: impl FnOnce(&T) -> bool) -> Option<T> {
        self.taken.set(true);
        let mut items = self.items.borrow_mut();
        if !fits(items.last()?) {
            return None;
        }
        let item = items.pop()?;
        self.low_water.set(self.low_water.get().min(items.len()));
        Some(item)
    }

    /// Give `item` back.
    pub fn push(&self, item: T) {
        self.items.borrow_mut().push(item);
    }

    /// Hand the items that stayed free since the last trim to `release`
    /// (oldest first); how many went.
    pub fn trim(&self, release: impl FnMut(T)) -> usize {
        let mut items = self.items.borrow_mut();
        let idle = !self.taken.replace(false);
        let surplus = if idle {
            items.len()
        } else {
            self.low_water.get().min(items.len())
        };
        // Not shrunk while in use: regrowing would allocate.
        items.drain(..surplus).for_each(release);
        if idle {
            *items = Vec::new();
        }
        self.low_water.set(items.len());
        surplus
    }

    /// Items free now.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Nothing free now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room the list itself holds (grown by a burst, let go when idle).
    pub fn room(&self) -> usize {
        self.items.borrow().capacity()
    }

    /// Every item, the list emptied (for an owner being dropped).
    pub fn take_all(&mut self) -> Vec<T> {
        std::mem::take(self.items.get_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_lets_go_of_what_stayed_free_and_all_of_it_after_a_quiet_interval() {
        let list = FreeList::default();
        for i in 0..4 {
            list.push(i);
        }
        let mut released = Vec::new();
        // The first interval took nothing: all of it goes, room too.
        assert_eq!(list.trim(|i| released.push(i)), 4);
        assert_eq!(released, [0, 1, 2, 3]);
        assert_eq!((list.len(), list.room()), (0, 0));

        for i in 0..4 {
            list.push(i);
        }
        list.trim(|_| {}); // quiet again: gone
        for i in 0..4 {
            list.push(i);
        }
        assert_eq!(list.pop_if(|_| true), Some(3));
        list.push(3);
        // Busy interval: the low water was 0 (the list emptied at the
        // quiet trim), so nothing is surplus.
        assert_eq!(list.trim(|_| {}), 0);
        assert_eq!(list.len(), 4);
        // Next interval: one taken, three never needed.
        assert_eq!(list.pop_if(|_| true), Some(3));
        assert_eq!(list.trim(|_| {}), 3);
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn an_item_that_does_not_fit_stays_but_the_interval_counts_as_used() {
        let list = FreeList::default();
        list.push(8);
        assert_eq!(list.pop_if(|&n| n > 8), None);
        assert_eq!(list.len(), 1);
        // Asked for: not a quiet interval, and the one item was below
        // the low water of 0 set when the list started: kept.
        assert_eq!(list.trim(|_| {}), 0);
        assert_eq!(list.len(), 1);
    }
}
