//! Micro-benchmarks of the scheduler core's hot paths: queue push/pop, handle lookup, timer
//! add and tick.

// criterion_group! defines an undocumented function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use skywasm::handle::HandleTable;
use skywasm::mq::{Message, MessageQueue};
use skywasm::timer::TimerWheel;
use skywasm::Handle;

fn queue(c: &mut Criterion) {
    let queue = MessageQueue::new();
    c.bench_function("mq push+pop", |b| {
        b.iter(|| {
            let _ = queue.push(Message::empty(Handle(1), 0, 1));
            black_box(queue.pop());
        })
    });
}

fn handles(c: &mut Criterion) {
    let table = HandleTable::<u64>::new(0);
    let handles: Vec<Handle> = (0..1000)
        .map(|i| table.register(|_| i).unwrap().0)
        .collect();
    let mut i = 0;
    c.bench_function("handle lookup (1000 live)", |b| {
        b.iter(|| {
            i = (i + 1) % handles.len();
            black_box(table.get(handles[i]))
        })
    });
}

fn timers(c: &mut Criterion) {
    c.bench_function("timer add + fire (1000 pending)", |b| {
        let mut wheel = TimerWheel::new();
        for n in 0..1000 {
            wheel.add(1 + n % 500, n);
        }
        let mut fired = Vec::new();
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            wheel.add(1 + n % 500, n);
            wheel.tick(&mut fired);
            fired.clear();
        })
    });
}

criterion_group!(benches, queue, handles, timers);
criterion_main!(benches);
