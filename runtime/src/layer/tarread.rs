//! A streaming tar reader for layer import.
//!
//! strata reads tars itself because the `tar` crate splits PAX records at newlines, so a
//! binary xattr value holding byte 0x0A (a `security.capability` can) cannot be read back.
//! This reader follows POSIX: PAX records are `LEN KEY=VALUE\n` with LEN counting the whole
//! record. It also takes GNU long names and links, base-256 numbers, and GNU sparse files
//! (the old `S` type with its extension blocks, and PAX format 1.0), expanding holes to
//! zeros for the caller.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::model::Timespec;

const BLOCK: usize = 512;
/// Extension headers (PAX, long names) larger than this are refused.
const MAX_EXTENSION: u64 = 1 << 20;

/// The kind of a tar member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarKind {
    Regular,
    HardLink,
    Symlink,
    CharDev,
    BlockDev,
    Directory,
    Fifo,
}

/// One member's header, with its extension headers applied.
#[derive(Clone, Debug)]
pub struct Member {
    /// The name as stored (PAX `path`, GNU long name, or ustar prefix + name).
    pub name: Vec<u8>,
    /// The link target of a hard or symbolic link.
    pub link: Vec<u8>,
    pub kind: TarKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Timespec,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// The file's length (holes of a sparse file included).
    pub size: u64,
    /// Extended attributes from `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// How the current member's data is laid out in the archive.
struct Data {
    /// (offset in the file, length) of each stored chunk, in order; one chunk for a plain file.
    chunks: Vec<(u64, u64)>,
    /// Index of the chunk being read.
    chunk: usize,
    /// Bytes of the current chunk already read.
    in_chunk: u64,
    /// The logical position in the file.
    pos: u64,
    size: u64,
    /// Stored bytes (data plus padding to a block) not yet consumed from the archive.
    stored_left: u64,
}

/// Reads the members of a tar stream one after another.
pub struct TarReader<R> {
    r: R,
    globals: BTreeMap<String, Vec<u8>>,
    data: Option<Data>,
    ended: bool,
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// Parses a numeric header field: octal text, or GNU base-256 when the high bit is set.
fn number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or_else(|| bad("base-256 number out of range"))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| *b != b' ' && *b != 0)
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad("numeric field is not text"))?;
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("numeric field {s:?} is not octal")))
}

fn cstr(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|b| *b != 0).collect()
}

/// Parses PAX records (`LEN KEY=VALUE\n`, LEN counting the whole record).
pub fn parse_pax(mut data: &[u8]) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("PAX record length is not a number"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("PAX record length does not match the record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("PAX record without '='"))?;
        let key = std::str::from_utf8(&rec[..eq]).map_err(|_| bad("PAX key is not UTF-8"))?;
        out.insert(key.to_string(), rec[eq + 1..].to_vec());
        data = &data[len..];
    }
    Ok(out)
}

/// Parses a PAX time `SECONDS[.FRACTION]` (possibly negative).
pub fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let sec: i64 = s.parse().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    Some(if !neg {
        Timespec::new(sec, nsec)
    } else if nsec == 0 {
        Timespec::new(-sec, 0)
    } else {
        Timespec::new(-sec - 1, 1_000_000_000 - nsec)
    })
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            globals: BTreeMap::new(),
            data: None,
            ended: false,
        }
    }

    /// The underlying reader (after the end-of-archive block).
    pub fn into_inner(self) -> R {
        self.r
    }

    /// Reads one 512-byte block; `Ok(false)` at a clean end of input.
    fn block(&mut self, buf: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let n = self.r.read(&mut buf[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated inside a header",
                ));
            }
            got += n;
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = buf.len().min(n as usize);
            self.r.read_exact(&mut buf[..want])?;
            n -= want as u64;
        }
        Ok(())
    }

    /// Reads an extension member's whole data (bounded).
    fn extension_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(bad(format!(
                "extension header of {size} bytes is too large"
            )));
        }
        let mut v = vec![0u8; size as usize];
        self.r.read_exact(&mut v)?;
        self.skip(padded(size) - size)?;
        Ok(v)
    }

    /// The next member, or `None` after the end-of-archive block. Errors with
    /// `UnexpectedEof` when the archive ends without that block (truncated), and with
    /// `InvalidData` for anything that is not a well-formed tar.
    pub fn next_member(&mut self) -> io::Result<Option<Member>> {
        if self.ended {
            return Ok(None);
        }
        if let Some(d) = self.data.take() {
            self.skip(d.stored_left)?;
        }
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut h = [0u8; BLOCK];
        loop {
            if !self.block(&mut h)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the archive ends without its end-of-archive blocks",
                ));
            }
            if h.iter().all(|b| *b == 0) {
                self.ended = true;
                return Ok(None);
            }
            let stored = number(&h[148..156])?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(*b)
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(*b as i8)
                    }
                })
                .sum();
            if stored != unsigned && stored as i64 != signed {
                return Err(bad("header checksum mismatch"));
            }
            let typeflag = h[156];
            let size = number(&h[124..136])?;
            match typeflag {
                b'x' => {
                    let data = self.extension_data(size)?;
                    pax.extend(parse_pax(&data)?);
                    continue;
                }
                b'g' => {
                    let data = self.extension_data(size)?;
                    self.globals.extend(parse_pax(&data)?);
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.extension_data(size)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.extension_data(size)?));
                    continue;
                }
                _ => {}
            }
            return self
                .member(&h, typeflag, size, pax, long_name, long_link)
                .map(Some);
        }
    }

    fn member(
        &mut self,
        h: &[u8; BLOCK],
        typeflag: u8,
        size: u64,
        local: BTreeMap<String, Vec<u8>>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> io::Result<Member> {
        let mut pax = self.globals.clone();
        pax.extend(local);
        let text = |k: &str| -> io::Result<Option<String>> {
            pax.get(k)
                .map(|v| {
                    String::from_utf8(v.clone()).map_err(|_| bad(format!("PAX {k} is not UTF-8")))
                })
                .transpose()
        };
        let ustar = &h[257..263] == b"ustar\0";
        let mut name = cstr(&h[0..100]);
        if ustar {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = [prefix, b"/".to_vec(), name].concat();
            }
        }
        if let Some(n) = long_name {
            name = n;
        }
        if let Some(p) = pax.get("path") {
            name = p.clone();
        }
        let mut link = cstr(&h[157..257]);
        if let Some(l) = long_link {
            link = l;
        }
        if let Some(l) = pax.get("linkpath") {
            link = l.clone();
        }
        let kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => TarKind::Regular,
            b'1' => TarKind::HardLink,
            b'2' => TarKind::Symlink,
            b'3' => TarKind::CharDev,
            b'4' => TarKind::BlockDev,
            b'5' => TarKind::Directory,
            b'6' => TarKind::Fifo,
            other => return Err(bad(format!("unsupported entry type {:?}", other as char))),
        };
        let mut uid = number(&h[108..116])?;
        let mut gid = number(&h[116..124])?;
        if let Some(v) = text("uid")? {
            uid = v.parse().map_err(|_| bad("bad PAX uid"))?;
        }
        if let Some(v) = text("gid")? {
            gid = v.parse().map_err(|_| bad("bad PAX gid"))?;
        }
        let mut mtime = Timespec::new(number(&h[136..148])? as i64, 0);
        if let Some(v) = text("mtime")? {
            mtime = parse_pax_time(&v).ok_or_else(|| bad(format!("bad PAX mtime {v:?}")))?;
        }
        let mut stored = size;
        if let Some(v) = text("size")? {
            stored = v.parse().map_err(|_| bad("bad PAX size"))?;
        }
        let xattrs = pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("SCHILY.xattr.")
                    .map(|x| (x.to_string(), v.clone()))
            })
            .collect();
        let mut m = Member {
            name,
            link,
            kind,
            mode: (number(&h[100..108])? & 0o7777) as u32,
            uid,
            gid,
            mtime,
            dev_major: number(&h[329..337])? as u32,
            dev_minor: number(&h[337..345])? as u32,
            size: stored,
            xattrs,
        };
        // Only regular files have content; any other member's data region is skipped.
        let regular = kind == TarKind::Regular;
        let mut data = Data {
            chunks: if regular {
                vec![(0, stored)]
            } else {
                Vec::new()
            },
            chunk: 0,
            in_chunk: 0,
            pos: 0,
            size: if regular { stored } else { 0 },
            stored_left: padded(stored),
        };
        let mut stored_data = stored;
        if typeflag == b'S' {
            data.chunks = self.gnu_sparse_map(h)?;
            data.size = number(&h[483..495])?;
        } else if text("GNU.sparse.major")?.as_deref() == Some("1") {
            let (chunks, map_bytes) = self.pax_sparse_map(stored)?;
            data.chunks = chunks;
            data.stored_left -= map_bytes;
            stored_data = stored.saturating_sub(map_bytes);
            data.size = text("GNU.sparse.realsize")?
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("PAX sparse file without GNU.sparse.realsize"))?;
            if let Some(n) = pax.get("GNU.sparse.name") {
                m.name = n.clone();
            }
        } else if pax.contains_key("GNU.sparse.map") || pax.contains_key("GNU.sparse.offset") {
            return Err(bad(
                "PAX sparse format 0.x is not supported (GNU tar writes 1.0 with --sparse-version=1.0)",
            ));
        }
        let mut end = 0u64;
        let mut total = 0u64;
        for (off, len) in &data.chunks {
            if *off < end || off.checked_add(*len).is_none_or(|e| e > data.size) {
                return Err(bad("sparse map out of order or beyond the file"));
            }
            end = off + len;
            total += len;
        }
        if regular && total != stored_data {
            return Err(bad("sparse map does not account for the member's data"));
        }
        m.size = data.size;
        self.data = Some(data);
        Ok(m)
    }

    /// The old GNU sparse map: four entries in the header, then extension blocks of 21.
    fn gnu_sparse_map(&mut self, h: &[u8; BLOCK]) -> io::Result<Vec<(u64, u64)>> {
        let mut chunks = Vec::new();
        let take = |area: &[u8], n: usize, chunks: &mut Vec<(u64, u64)>| -> io::Result<()> {
            for i in 0..n {
                let e = &area[i * 24..i * 24 + 24];
                if e.iter().all(|b| *b == 0) {
                    continue;
                }
                chunks.push((number(&e[..12])?, number(&e[12..])?));
            }
            Ok(())
        };
        take(&h[386..482], 4, &mut chunks)?;
        let mut extended = h[482] != 0;
        let mut ext = [0u8; BLOCK];
        while extended {
            if !self.block(&mut ext)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated inside a sparse map",
                ));
            }
            take(&ext[..504], 21, &mut chunks)?;
            extended = ext[504] != 0;
        }
        Ok(chunks)
    }

    /// The PAX 1.0 sparse map at the start of the data: decimal lines `count`, then
    /// `offset` and `length` per chunk, padded to a block. Returns the map and its size.
    fn pax_sparse_map(&mut self, stored: u64) -> io::Result<(Vec<(u64, u64)>, u64)> {
        let mut text = Vec::new();
        let mut blk = [0u8; BLOCK];
        let mut numbers: Vec<u64> = Vec::new();
        let mut need: Option<usize> = None;
        while need.is_none_or(|n| numbers.len() < n) {
            if text.len() as u64 >= stored.min(MAX_EXTENSION) {
                return Err(bad("PAX sparse map runs past the member"));
            }
            if !self.block(&mut blk)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated inside a sparse map",
                ));
            }
            text.extend_from_slice(&blk);
            numbers.clear();
            let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            for line in text[..complete]
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("bad PAX sparse map"))?;
                numbers.push(v);
            }
            if let Some(count) = numbers.first() {
                need = Some(1 + 2 * *count as usize);
            }
        }
        let chunks = numbers[1..].chunks(2).map(|p| (p[0], p[1])).collect();
        Ok((chunks, text.len() as u64))
    }

    /// Reads the current member's content (zeros in its holes).
    pub fn data(&mut self) -> DataReader<'_, R> {
        DataReader { tr: self }
    }
}

/// The content of the current member.
pub struct DataReader<'a, R> {
    tr: &'a mut TarReader<R>,
}

impl<R: Read> Read for DataReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.tr.data.as_mut() else {
            return Ok(0);
        };
        loop {
            if d.pos >= d.size || buf.is_empty() {
                return Ok(0);
            }
            let (off, len) = d.chunks.get(d.chunk).copied().unwrap_or((d.size, 0));
            if d.pos < off {
                let n = buf.len().min((off - d.pos) as usize);
                buf[..n].fill(0);
                d.pos += n as u64;
                return Ok(n);
            }
            if d.in_chunk == len {
                if d.chunk >= d.chunks.len() {
                    return Ok(0);
                }
                d.chunk += 1;
                d.in_chunk = 0;
                continue;
            }
            let want = buf.len().min((len - d.in_chunk) as usize);
            let n = self.tr.r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated inside an entry",
                ));
            }
            d.in_chunk += n as u64;
            d.pos += n as u64;
            d.stored_left -= n as u64;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_keep_binary_values_with_newlines() {
        let value = b"a\nb\x00c";
        let body = [b"SCHILY.xattr.user.k=".as_slice(), value.as_slice(), b"\n"].concat();
        let mut len = body.len() + 3;
        if format!("{len} ").len() + body.len() != len {
            len += 1;
        }
        let rec = [format!("{len} ").into_bytes(), body].concat();
        assert_eq!(rec.len(), len);
        let m = parse_pax(&rec).unwrap();
        assert_eq!(m["SCHILY.xattr.user.k"], value.to_vec());
        assert!(
            parse_pax(b"9 a=b\n").is_err(),
            "a wrong length must not parse"
        );
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"   17 \0").unwrap(), 0o17);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert!(number(b"9x").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time("1700000000.123456789"),
            Some(Timespec::new(1_700_000_000, 123_456_789))
        );
        assert_eq!(parse_pax_time("5.5"), Some(Timespec::new(5, 500_000_000)));
        assert_eq!(
            parse_pax_time("-1.25"),
            Some(Timespec::new(-2, 750_000_000))
        );
        assert_eq!(parse_pax_time("x"), None);
    }

    #[test]
    fn reads_what_the_tar_crate_writes_including_long_names() {
        let long = format!("{}/file", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o4755);
        h.set_mtime(7);
        b.append_pax_extensions([("SCHILY.xattr.user.x", &b"1\n2"[..]), ("mtime", b"7.5")])
            .unwrap();
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let out = b.into_inner().unwrap();
        let mut r = TarReader::new(&out[..]);
        let m = r.next_member().unwrap().unwrap();
        assert_eq!(String::from_utf8(m.name).unwrap(), long);
        assert_eq!(m.mode, 0o4755);
        assert_eq!(m.mtime, Timespec::new(7, 500_000_000));
        assert_eq!(m.xattrs["user.x"], b"1\n2".to_vec());
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"abc");
        assert!(r.next_member().unwrap().is_none());
    }

    #[test]
    fn a_tar_without_its_end_blocks_is_truncated() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        let out = b.into_inner().unwrap();
        let cut = &out[..1024];
        let mut r = TarReader::new(cut);
        assert!(r.next_member().unwrap().is_some());
        assert_eq!(
            r.next_member().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
