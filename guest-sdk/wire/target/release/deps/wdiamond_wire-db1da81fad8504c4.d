/work/main/guest-sdk/wire/target/release/deps/wdiamond_wire-db1da81fad8504c4.d: src/lib.rs

/work/main/guest-sdk/wire/target/release/deps/wdiamond_wire-db1da81fad8504c4: src/lib.rs

src/lib.rs:
