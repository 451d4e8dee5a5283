//! A restricted unpickler for what `torch.save` writes: it builds a tree of
//! values and runs no code, ever. Only the opcodes and globals
//! `torch.load(weights_only=True)` accepts are known; any other opcode or
//! global is an error naming it (and the byte offset where it stood).
//!
//! Globals are never called. `_rebuild_tensor_v2(storage, offset, size,
//! stride, …)` becomes a [`TensorRef`] describing where the tensor's values
//! lie in which storage; `collections.OrderedDict()` an empty dict; the
//! storage types and dtypes are names. A persistent id (`BINPERSID`) must be
//! torch's `('storage', storage_type, key, location, numel)`.
//!
//! Bounds, so a hostile file costs little: containers are shared through
//! `Rc` (a memo fetch copies a pointer, never a tree, so a "memo bomb" of
//! repeated BINGETs stays linear), the stack, the memo and the number of
//! values built are capped, and strings are bounded by the bytes left.

use std::cell::RefCell;
use std::rc::Rc;

/// Values built by the unpickler.
#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    /// Insertion-ordered, as Python's dict.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// An allowed global, by its dotted name (never called).
    Global(Rc<str>),
    /// A storage a persistent id names.
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

/// `('storage', torch.FloatStorage, '0', 'cpu', 1024)`: the storage's type
/// (a `torch.*Storage` or `torch.UntypedStorage`), its key (the zip record
/// `data/<key>`) and its size in elements (bytes for an untyped storage).
#[derive(Debug, PartialEq)]
pub struct StorageRef {
    pub storage_type: String,
    pub key: String,
    pub numel: u64,
}

/// A tensor as torch rebuilds it: a view of a storage. Offsets and strides
/// count elements of the tensor's dtype.
#[derive(Debug, PartialEq)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    /// `torch.float32`… for a v3 rebuild; for v2 the storage type implies it.
    pub dtype: Option<String>,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Why a pickle was refused: a message naming the opcode or global and the
/// byte offset.
#[derive(Debug, PartialEq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits on what one pickle may build.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 22;
const MAX_VALUES: u64 = 1 << 26;

/// The globals a weights-only load allows that parity understands.
const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch.Size",
];

const STORAGES: &[&str] = &[
    "DoubleStorage",
    "FloatStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "UntypedStorage",
];

const DTYPES: &[&str] = &[
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "float8_e4m3fn", "float8_e5m2",
];

fn allowed(module: &str, name: &str) -> bool {
    let dotted = format!("{module}.{name}");
    ALLOWED.contains(&dotted.as_str())
        || (module == "torch" && (STORAGES.contains(&name) || DTYPES.contains(&name)))
        // torch ≥ 2 names the untyped storage by its defining module.
        || dotted == "torch.storage.UntypedStorage"
}

/// An unpickled value. Dropping it takes its tree apart iteratively: a
/// hostile pickle can nest a million lists (`]]]…aaa`), and dropping that
/// recursively would overflow the stack.
/// It also holds every list and dict the pickle made: list and dict
/// operations can put a container inside itself (`]` `q\x00` `h\x00` `a`:
/// a list appended to itself through the memo), a reference cycle that
/// reference counting never frees. Dropping the tree empties each of them
/// first, which breaks every cycle.
#[derive(Debug)]
pub struct Tree(Value, Vec<Value>);

impl std::ops::Deref for Tree {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let mut work = empty_containers(std::mem::take(&mut self.1));
        work.push(std::mem::replace(&mut self.0, Value::None));
        dismantle(work);
    }
}

/// The contents of every container, moved out (so no container holds
/// another any more: no cycle survives), with the emptied containers.
fn empty_containers(containers: Vec<Value>) -> Vec<Value> {
    let mut work = Vec::new();
    for c in containers {
        match &c {
            Value::List(l) => work.extend(std::mem::take(&mut *l.borrow_mut())),
            Value::Dict(d) => {
                for (k, v) in std::mem::take(&mut *d.borrow_mut()) {
                    work.push(k);
                    work.push(v);
                }
            }
            _ => {}
        }
        work.push(c);
    }
    work
}

/// Drop values without recursion: a container whose last reference this is
/// hands its children to the work list; a shared one only loses a count.
fn dismantle(mut work: Vec<Value>) {
    while let Some(v) = work.pop() {
        match v {
            Value::List(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    work.extend(cell.into_inner());
                }
            }
            Value::Tuple(rc) => {
                if let Ok(items) = Rc::try_unwrap(rc) {
                    work.extend(items);
                }
            }
            Value::Dict(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    for (k, v) in cell.into_inner() {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        let mut work = empty_containers(std::mem::take(&mut self.containers));
        work.extend(std::mem::take(&mut self.stack));
        work.extend(std::mem::take(&mut self.memo).into_iter().flatten());
        dismantle(work);
    }
}

/// Unpickle `data` (one pickle, up to its STOP) without running anything.
pub fn load(data: &[u8]) -> Result<Tree, Refused> {
    load_prefix(data).map(|(v, _)| v)
}

/// [`load`] the pickle at the start of `data`, and say how many bytes it
/// took (the legacy format writes several pickles one after another).
pub fn load_prefix(data: &[u8]) -> Result<(Tree, usize), Refused> {
    let mut m = Machine { data, at: 0, stack: Vec::new(), marks: Vec::new(), memo: Vec::new(), built: 0, containers: Vec::new() };
    let v = m.run()?;
    Ok((Tree(v, std::mem::take(&mut m.containers)), m.at))
}

/// `d[key]` of a dict value with string keys.
pub fn dict_get(d: &Value, key: &str) -> Option<Value> {
    let Value::Dict(d) = d else { return None };
    let found = d.borrow().iter().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v.clone());
    found
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
    built: u64,
    /// Every list and dict made, to be emptied when the value is dropped
    /// (see [`Tree`]).
    containers: Vec<Value>,
}

impl Machine<'_> {
    /// Push a new list or dict, and remember it (see [`Tree`]).
    fn push_container(&mut self, v: Value) -> Result<(), Refused> {
        self.containers.push(v.clone());
        self.push(v)
    }

    fn refuse<T>(&self, at: usize, what: impl std::fmt::Display) -> Result<T, Refused> {
        Err(Refused(format!("pickle byte {at}: {what}")))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Refused> {
        if self.data.len() - self.at < n {
            return self.refuse(self.at, format!("{n} bytes wanted, {} left (truncated)", self.data.len() - self.at));
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Refused> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Refused> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn line(&mut self) -> Result<String, Refused> {
        let start = self.at;
        let end = self.data[start..].iter().position(|&b| b == b'\n').map(|p| start + p);
        let Some(end) = end else { return self.refuse(start, "a GLOBAL's name has no end of line") };
        self.at = end + 1;
        std::str::from_utf8(&self.data[start..end]).map(str::to_string).or_else(|_| self.refuse(start, "a GLOBAL's name is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> Result<(), Refused> {
        self.built += 1;
        if self.stack.len() >= MAX_STACK || self.built > MAX_VALUES {
            return self.refuse(self.at, "too many values (a pickle bomb?)");
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, op_at: usize) -> Result<Value, Refused> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) && !self.marks.is_empty() {
            return self.refuse(op_at, "pops past a MARK");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.refuse(op_at, "pops an empty stack"),
        }
    }

    fn pop_mark(&mut self, op_at: usize) -> Result<Vec<Value>, Refused> {
        let Some(m) = self.marks.pop() else { return self.refuse(op_at, "no MARK to pop to") };
        Ok(self.stack.split_off(m))
    }

    fn top(&mut self, op_at: usize) -> Result<&mut Value, Refused> {
        match self.stack.last_mut() {
            Some(v) => Ok(v),
            None => Err(Refused(format!("pickle byte {op_at}: an empty stack"))),
        }
    }

    fn put(&mut self, i: usize, op_at: usize) -> Result<(), Refused> {
        if i >= MAX_MEMO {
            return self.refuse(op_at, format!("memo index {i} beyond {MAX_MEMO}"));
        }
        let v = self.top(op_at)?.clone();
        if self.memo.len() <= i {
            self.memo.resize(i + 1, None);
        }
        self.memo[i] = Some(v);
        Ok(())
    }

    fn get(&mut self, i: usize, op_at: usize) -> Result<(), Refused> {
        match self.memo.get(i).cloned().flatten() {
            Some(v) => self.push(v),
            None => self.refuse(op_at, format!("memo index {i} was never set")),
        }
    }

    fn run(&mut self) -> Result<Value, Refused> {
        loop {
            let op_at = self.at;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return self.refuse(op_at, format!("pickle protocol {p}"));
                    }
                }
                b'.' => {
                    if !self.marks.is_empty() {
                        return self.refuse(op_at, "STOP inside a MARK");
                    }
                    return self.pop(op_at);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.push_container(Value::Dict(Rc::default()))?,
                b']' => self.push_container(Value::List(Rc::default()))?,
                b')' => self.push(Value::Tuple(Rc::default()))?,
                b't' => {
                    let items = self.pop_mark(op_at)?;
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.refuse(op_at, format!("TUPLE{n} needs {n} values"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                b's' => {
                    let v = self.pop(op_at)?;
                    let k = self.pop(op_at)?;
                    self.set_items(op_at, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark(op_at)?;
                    if items.len() % 2 != 0 {
                        return self.refuse(op_at, "SETITEMS with an odd number of values");
                    }
                    self.set_items(op_at, items)?;
                }
                b'a' => {
                    let v = self.pop(op_at)?;
                    self.append(op_at, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark(op_at)?;
                    self.append(op_at, items)?;
                }
                b'q' => {
                    let i = self.u8()? as usize;
                    self.put(i, op_at)?;
                }
                b'r' => {
                    let i = self.u32()? as usize;
                    self.put(i, op_at)?;
                }
                b'h' => {
                    let i = self.u8()? as usize;
                    self.get(i, op_at)?;
                }
                b'j' => {
                    let i = self.u32()? as usize;
                    self.get(i, op_at)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                    self.push(Value::Int(v as i64))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
                    self.push(Value::Int(v as i64))?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    let v = long1(&bytes).ok_or_else(|| Refused(format!("pickle byte {op_at}: LONG1 of {n} bytes does not fit an i64")))?;
                    self.push(Value::Int(v))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                    self.push(Value::Float(v))?;
                }
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'N' => self.push(Value::None)?,
                b'X' => {
                    let n = self.u32()? as usize;
                    let at = self.at;
                    let s = std::str::from_utf8(self.take(n)?).map(Rc::<str>::from);
                    match s {
                        Ok(s) => self.push(Value::Str(s))?,
                        Err(_) => return self.refuse(at, "BINUNICODE is not UTF-8"),
                    }
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b))?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    if !allowed(&module, &name) {
                        return self.refuse(
                            op_at,
                            format!("global '{module}.{name}' is not allowed: parity reads only what torch.load(weights_only=True) reads, and never runs a pickle's code"),
                        );
                    }
                    self.push(Value::Global(format!("{module}.{name}").into()))?;
                }
                b'R' => {
                    let args = self.pop(op_at)?;
                    let callable = self.pop(op_at)?;
                    let v = self.reduce(op_at, callable, args)?;
                    match v {
                        Value::List(_) | Value::Dict(_) => self.push_container(v)?,
                        v => self.push(v)?,
                    }
                }
                b'b' => {
                    // BUILD: state set on the object below. torch writes it
                    // for an OrderedDict's `_metadata` and a Parameter's
                    // state: neither holds values parity reads.
                    let _state = self.pop(op_at)?;
                    match self.top(op_at)? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            let what = kind(other);
                            return self.refuse(op_at, format!("BUILD on a {what}"));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop(op_at)?;
                    let storage = self.storage(op_at, pid)?;
                    self.push(Value::Storage(Rc::new(storage)))?;
                }
                other => {
                    return self.refuse(op_at, format!("opcode 0x{other:02x} is not one torch.load(weights_only=True) accepts"));
                }
            }
        }
    }

    fn set_items(&mut self, op_at: usize, items: Vec<Value>) -> Result<(), Refused> {
        let Value::Dict(d) = self.top(op_at)? else { return self.refuse(op_at, "SETITEM(S) on a value that is not a dict") };
        let d = d.clone();
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            // A repeated key replaces the value in its place, as in Python.
            match d.iter_mut().find(|(key, _)| same_key(key, &k)) {
                Some(slot) => slot.1 = v,
                None => d.push((k, v)),
            }
        }
        Ok(())
    }

    fn append(&mut self, op_at: usize, items: Vec<Value>) -> Result<(), Refused> {
        let Value::List(l) = self.top(op_at)? else { return self.refuse(op_at, "APPEND(S) on a value that is not a list") };
        l.clone().borrow_mut().extend(items);
        Ok(())
    }

    fn storage(&self, op_at: usize, pid: Value) -> Result<StorageRef, Refused> {
        let bad = |why: &str| Refused(format!("pickle byte {op_at}: persistent id {why}"));
        let Value::Tuple(t) = pid else { return Err(bad("is not a tuple")) };
        match t.as_slice() {
            [Value::Str(tag), Value::Global(ty), Value::Str(key), _location, Value::Int(numel), view @ ..] if &**tag == "storage" => {
                // The legacy format's sixth field: a storage that is a view of
                // another (torch < 0.4). Only "none" is read.
                if !matches!(view, [] | [Value::None]) {
                    return Err(bad("describes a view of another storage (torch < 0.4): re-save with a current torch"));
                }
                let ty = ty.strip_prefix("torch.storage.").or_else(|| ty.strip_prefix("torch.")).filter(|n| STORAGES.contains(n)).ok_or_else(|| bad(&format!("names '{ty}', not a storage type")))?;
                if *numel < 0 {
                    return Err(bad("has a negative size"));
                }
                Ok(StorageRef { storage_type: ty.to_string(), key: key.to_string(), numel: *numel as u64 })
            }
            [Value::Str(tag), ..] if &**tag == "module" => Err(bad("is a whole module (torch.save(model)): save its state_dict()")),
            _ => Err(bad("is not ('storage', type, key, location, numel)")),
        }
    }

    fn reduce(&self, op_at: usize, callable: Value, args: Value) -> Result<Value, Refused> {
        let Value::Global(name) = callable else { return self.refuse(op_at, format!("REDUCE of a {}", kind(&callable))) };
        let Value::Tuple(args) = args else { return self.refuse(op_at, format!("{name}: arguments are not a tuple")) };
        match (&*name, args.as_slice()) {
            ("collections.OrderedDict", []) => Ok(Value::Dict(Rc::default())),
            ("torch.Size", [Value::Tuple(t)]) => Ok(Value::Tuple(t.clone())),
            ("torch._utils._rebuild_parameter", [Value::Tensor(t), ..]) => Ok(Value::Tensor(t.clone())),
            ("torch._utils._rebuild_tensor_v2", [Value::Storage(s), offset, size, stride, _grad, _hooks, rest @ ..]) => {
                no_metadata(op_at, &name, rest)?;
                Ok(Value::Tensor(Rc::new(tensor(op_at, s, None, offset, size, stride)?)))
            }
            ("torch._utils._rebuild_tensor_v3", [Value::Storage(s), offset, size, stride, _grad, _hooks, Value::Global(dtype), rest @ ..]) => {
                no_metadata(op_at, &name, rest)?;
                let dtype = dtype.strip_prefix("torch.").filter(|d| DTYPES.contains(d)).ok_or_else(|| Refused(format!("pickle byte {op_at}: {name}: dtype '{dtype}'")))?;
                Ok(Value::Tensor(Rc::new(tensor(op_at, s, Some(dtype.to_string()), offset, size, stride)?)))
            }
            _ => self.refuse(op_at, format!("{name} called with arguments parity does not understand")),
        }
    }
}

/// v2/v3's optional trailing `metadata` (conj/neg bits): ignoring it would
/// change values, so anything but none or an empty dict is refused.
fn no_metadata(op_at: usize, name: &str, rest: &[Value]) -> Result<(), Refused> {
    match rest {
        [] | [Value::None] => Ok(()),
        [Value::Dict(d)] if d.borrow().is_empty() => Ok(()),
        _ => Err(Refused(format!("pickle byte {op_at}: {name}: tensor metadata (conjugate or negative bits) parity cannot apply"))),
    }
}

fn tensor(op_at: usize, s: &Rc<StorageRef>, dtype: Option<String>, offset: &Value, size: &Value, stride: &Value) -> Result<TensorRef, Refused> {
    let bad = |what: &str| Refused(format!("pickle byte {op_at}: a tensor's {what} is not a non-negative integer (tuple)"));
    let int = |v: &Value, what: &str| match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        _ => Err(bad(what)),
    };
    let ints = |v: &Value, what: &str| match v {
        Value::Tuple(t) => t.iter().map(|x| int(x, what)).collect::<Result<Vec<_>, _>>(),
        _ => Err(bad(what)),
    };
    let size = ints(size, "size")?;
    let stride = ints(stride, "stride")?;
    if size.len() != stride.len() {
        return Err(Refused(format!("pickle byte {op_at}: a tensor has {} sizes but {} strides", size.len(), stride.len())));
    }
    Ok(TensorRef { storage: s.clone(), dtype, offset: int(offset, "storage offset")?, size, stride })
}

/// Dict keys compare by value for the types torch writes as keys.
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => false,
    }
}

/// A value's type, as messages name it (never its contents: a hostile
/// value may nest a million deep, and printing it would recurse that far).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(_) => "global",
        Value::Storage(_) => "storage",
        Value::Tensor(_) => "tensor",
    }
}

/// LONG1's little-endian two's complement, if it fits an i64.
fn long1(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    if bytes.len() > 8 && bytes[8..].iter().any(|&b| b != fill) {
        return None;
    }
    let mut buf = [fill; 8];
    for (i, &b) in bytes.iter().take(8).enumerate() {
        buf[i] = b;
    }
    let v = i64::from_le_bytes(buf);
    // Nine or more bytes fit only if the sign bit agrees with the fill.
    if bytes.len() > 8 && (v < 0) != negative {
        return None;
    }
    Some(v)
}

/// Every tensor reachable from `root`, by dotted path (dict keys, list and
/// tuple indices), in the order met; and how many non-tensor leaves were
/// skipped. A container met again (shared) is walked again under its new
/// path: tied weights are listed under each name. Depth is bounded.
pub fn tensors(root: &Value) -> Result<(Vec<(String, Rc<TensorRef>)>, u64), Refused> {
    let mut out = Vec::new();
    let mut counts = (0u64, 0u64); // (skipped leaves, containers and values visited)
    walk(root, String::new(), 0, &mut out, &mut counts)?;
    Ok((out, counts.0))
}

const MAX_DEPTH: usize = 256;
const MAX_NAMED: usize = 1 << 22;

fn walk(v: &Value, path: String, depth: usize, out: &mut Vec<(String, Rc<TensorRef>)>, counts: &mut (u64, u64)) -> Result<(), Refused> {
    if depth > MAX_DEPTH {
        let shown: String = path.chars().take(60).collect();
        return Err(Refused(format!("'{shown}…': nested deeper than {MAX_DEPTH}")));
    }
    // Every value visited counts, empty containers included: shared
    // containers make a tree of 2^n paths from n pickle values.
    counts.1 += 1;
    if counts.1 > MAX_NAMED as u64 {
        return Err(Refused(format!("more than {MAX_NAMED} values to name (a pickle bomb?)")));
    }

    let child = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match v {
        Value::Tensor(t) => out.push((path, t.clone())),
        Value::Dict(d) => {
            for (k, v) in d.borrow().iter() {
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    // Integer keys: an optimizer's per-parameter state.
                    Value::Int(i) => i.to_string(),
                    other => {
                        let at = if path.is_empty() { "the top-level dict".to_string() } else { format!("'{path}'") };
                        return Err(Refused(format!("{at} has a {} key: only string and integer keys name tensors", kind(other))));
                    }
                };
                walk(v, child(&key), depth + 1, out, counts)?;
            }
        }
        Value::List(l) => {
            for (i, v) in l.borrow().iter().enumerate() {
                walk(v, child(&i.to_string()), depth + 1, out, counts)?;
            }
        }
        Value::Tuple(t) => {
            for (i, v) in t.iter().enumerate() {
                walk(v, child(&i.to_string()), depth + 1, out, counts)?;
            }
        }
        _ => counts.0 += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state dict as torch 2.x writes it for {"w": a 2×3 f32 tensor}
    /// (hand-assembled from the opcodes torch's pickler emits).
    fn state_dict_pickle() -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)Rq\x01");
        p.extend(b"X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02");
        p.extend(b"((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x06tq\x07Q");
        p.extend(b"K\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\x09\x89ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cR");
        p.extend(b"q\x0ds");
        p.extend(b"X\x04\x00\x00\x00tied");
        p.extend(b"h\x0d");
        p.extend(b"s.");
        p
    }

    #[test]
    fn a_state_dict_gives_its_tensors_by_name_and_a_tied_one_twice() {
        let v = load(&state_dict_pickle()).unwrap();
        let (named, skipped) = tensors(&v).unwrap();
        assert_eq!(skipped, 0);
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "tied"]);
        let t = &named[0].1;
        assert_eq!((t.storage.storage_type.as_str(), t.storage.key.as_str(), t.storage.numel), ("FloatStorage", "0", 6));
        assert_eq!((t.offset, t.size.as_slice(), t.stride.as_slice()), (0, &[2u64, 3][..], &[3u64, 1][..]));
        assert!(Rc::ptr_eq(&named[0].1, &named[1].1));
    }

    /// `data.pkl` of a real `torch.save` (torch 2.15.0, tests/fixtures/pytorch,
    /// written by the snippet in its README): views, a shared storage, bf16,
    /// float8 (a v3 rebuild over an untyped storage), a 0-d and an empty
    /// tensor, non-tensor leaves. Expected values are torch's documented
    /// layout of those tensors, not this reader's output.
    #[test]
    fn a_real_torch_save_gives_every_tensor_as_torch_laid_it_out() {
        let v = load(include_bytes!("../../../tests/fixtures/pytorch/state_data.pkl")).unwrap();
        let (named, skipped) = tensors(&v).unwrap();
        assert_eq!(skipped, 2, "epoch and lr");
        let by: std::collections::HashMap<&str, &TensorRef> = named.iter().map(|(n, t)| (n.as_str(), &**t)).collect();
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["model.w", "model.tied", "model.wt", "model.col", "model.b", "model.f8", "model.scalar", "model.empty", "layers.0", "layers.1"]);
        let layout = |n: &str| (by[n].offset, by[n].size.clone(), by[n].stride.clone());
        assert_eq!(layout("model.w"), (0, vec![2, 3], vec![3, 1]));
        assert_eq!(layout("model.wt"), (0, vec![3, 2], vec![1, 3]), "a transpose: the same storage, strides swapped");
        assert_eq!(layout("model.col"), (1, vec![2], vec![3]), "w[:, 1]: offset 1, stride 3");
        assert_eq!(layout("model.scalar"), (0, vec![], vec![]));
        assert_eq!(layout("model.empty").1, vec![0, 4]);
        for view in ["model.tied", "model.wt", "model.col"] {
            assert_eq!(by[view].storage, by["model.w"].storage, "{view} shares w's storage");
        }
        assert_eq!((by["model.w"].storage.storage_type.as_str(), by["model.w"].storage.numel), ("FloatStorage", 6));
        assert_eq!(by["model.b"].storage.storage_type, "BFloat16Storage");
        assert_eq!(by["layers.0"].storage.storage_type, "ShortStorage");
        assert_eq!(by["layers.1"].storage.storage_type, "BoolStorage");
        let f8 = by["model.f8"];
        assert_eq!((f8.storage.storage_type.as_str(), f8.dtype.as_deref(), f8.storage.numel), ("UntypedStorage", Some("float8_e4m3fn"), 2));
        assert!(by["model.w"].dtype.is_none());
    }

    #[test]
    fn a_global_outside_the_allowlist_is_refused_by_name_and_nothing_runs() {
        // cos.system / (S'touch /tmp/x' tR. — what an exploit pickle looks like.
        let p = b"\x80\x02cposix\nsystem\nX\x0c\x00\x00\x00touch /tmp/x\x85R.";
        let e = load(p).unwrap_err();
        assert!(e.0.contains("global 'posix.system' is not allowed"), "{e}");
        assert!(e.0.starts_with("pickle byte 2:"), "{e}");
    }

    #[test]
    fn opcodes_torch_refuses_are_refused_naming_them() {
        // STACK_GLOBAL (0x93) is how protocol 4 names a global.
        let e = load(b"\x80\x04\x93.").unwrap_err();
        assert!(e.0.contains("opcode 0x93"), "{e}");
        assert!(load(b"").unwrap_err().0.contains("truncated"));
        assert!(load(b"\x80\x02K").unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn a_memo_bomb_stays_linear() {
        // A list holding itself-sized copies, 40 levels deep: 2^40 values if
        // memo fetches copied trees; with shared containers, 80 pushes.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..40 {
            p.extend([b'(', b'h', 0, b'h', 0, b't', b'q', 0]);
        }
        p.push(b'.');
        let v = load(&p).unwrap();
        // Walking it is bounded too: named paths are capped, not explored 2^40 times.
        let e = tensors(&v).unwrap_err();
        assert!(e.0.contains("a pickle bomb") || e.0.contains("deeper"), "{e}");
    }

    /// A fuzz finding (2026-12-07, 6.5M executions in): a pickle nesting
    /// lists a hundred thousand deep overflowed the stack when its value was
    /// dropped (SIGSEGV). Built bottom-up (`]]]…aaa`) and top-down (each list
    /// appended to, then fetched again from the memo).
    /// Fuzz finding (CI's smoke, LeakSanitizer): a list appended to itself
    /// through the memo, and two lists holding each other, are reference
    /// cycles; dropping the value (or refusing the pickle) must free them.
    #[test]
    fn self_referential_lists_are_freed() {
        // PROTO 2, ] MEMOIZE… : `l = []; l.append(l)`, then STOP.
        let self_ref = b"\x80\x02]q\x00h\x00a.";
        let weak = {
            let t = load(self_ref).unwrap();
            let Value::List(l) = &*t else { panic!("a list") };
            assert_eq!(l.borrow().len(), 1);
            Rc::downgrade(l)
        };
        assert!(weak.upgrade().is_none(), "the self-referential list was leaked");
        // `a = []; b = [a]; a.append(b)`, refused afterwards (no STOP): the machine's drop frees them.
        let mutual = b"\x80\x02]q\x00]q\x01h\x00ah\x01h\x00a";
        assert!(load(mutual).is_err());
    }

    #[test]
    fn a_deeply_nested_pickle_is_dropped_without_recursion() {
        let n = 200_000;
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', n));
        p.extend(std::iter::repeat_n(b'a', n - 1));
        p.push(b'.');
        let v = load(&p).unwrap();
        assert!(tensors(&v).unwrap_err().0.contains("deeper"));
        drop(v);
        // Top-down: ] q0 then repeatedly ( ] q1 … : a list put in the memo, a
        // new list appended to it, the new one memoised under the same index.
        // Each round: a new list, memoised, appended to the list on top, then
        // fetched back to be the next one's parent (the stack keeps the chain).
        let mut p = vec![0x80, 2, b']'];
        for _ in 0..n {
            p.extend([b']', b'q', 1, b'a', b'h', 1]);
        }
        p.push(b'.');
        drop(load(&p).unwrap());
    }

    #[test]
    fn long1_fits_i64_or_is_refused() {
        assert_eq!(long1(&[]), Some(0));
        assert_eq!(long1(&[0xff]), Some(-1));
        assert_eq!(long1(&[0x00, 0x80]), Some(-32768));
        assert_eq!(long1(&[0xff; 8]), Some(-1));
        assert_eq!(long1(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), Some(i64::MAX));
        assert_eq!(long1(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff]), Some(i64::MIN));
        assert_eq!(long1(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0x00]), None);
        assert_eq!(long1(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn metadata_that_would_change_values_is_refused() {
        assert!(no_metadata(0, "v2", &[]).is_ok());
        assert!(no_metadata(0, "v2", &[Value::None]).is_ok());
        let d = Value::Dict(Rc::new(RefCell::new(vec![(Value::Str("conj".into()), Value::Bool(true))])));
        assert!(no_metadata(0, "v2", &[d]).unwrap_err().0.contains("conjugate"));
    }
}
