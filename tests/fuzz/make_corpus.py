#!/usr/bin/env python3
"""Writes tests/fuzz/corpus_safetensors/: small safetensors files, good and bad, and the
manifest corpus_safetensors.expect that says what the reader must do with each.

The files seed the fuzzer (scripts/fuzz_safetensors.sh) and are replayed in every test run by
test_safetensors_corpus. A manifest line is the file name, then tab-separated fragments that
the reel::Error message must contain (besides the file's name), or OK when the file must load.
Inputs the fuzzer once found crashing are kept at the end of CASES. Run from anywhere:
    python3 tests/fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus_safetensors")
MANIFEST = os.path.join(HERE, "corpus_safetensors.expect")


def st(header, data=b"", length=None, pad=True):
    """A safetensors file: the 8-byte little-endian header length, the header, the data."""
    h = header.encode() if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def entry(name, dtype='"F32"', shape="[1]", offsets="[0,4]"):
    return '"%s":{"dtype":%s,"shape":%s,"data_offsets":%s}' % (name, dtype, shape, offsets)


def one(dtype='"F32"', shape="[1]", offsets="[0,4]", data=b"\0" * 4, name="x"):
    return st("{" + entry(name, dtype, shape, offsets) + "}", data)


ALL_DTYPES = [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4),
              ("I16", 2), ("I8", 1), ("U8", 1), ("BOOL", 1)]


def all_dtypes():
    entries, pos = [], 0
    for name, size in ALL_DTYPES:
        entries.append(entry(name.lower(), '"%s"' % name, "[2]", "[%d,%d]" % (pos, pos + 2 * size)))
        pos += 2 * size
    return st("{" + ",".join(entries) + "}", bytes(range(pos)))


TX = "tensor 'x'"
CASES = [
    # Files that must load: PyTorch writes all of these.
    ("ok_scalar_and_empty", st('{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},'
                               '"e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},'
                               '"__metadata__":{"format":"pt"}}', b"\0\0\x80\x3f"), "OK"),
    ("ok_all_dtypes", all_dtypes(), "OK"),
    ("ok_rank16", one(shape="[" + ",".join(["1"] * 16) + "]"), "OK"),
    ("ok_no_tensors", st("{}"), "OK"),
    ("ok_out_of_order", st("{" + entry("b", offsets="[4,8]") + "," + entry("a") + "}",
                           b"\0" * 8), "OK"),
    # The header length.
    ("short_file", b"\x10\0\0", ["too short (3 bytes)"]),
    ("header_past_end", st("{}", length=4096), ["header length 4096 runs past the end"]),
    ("header_absurd", st("{}", length=1 << 63), ["header length 9223372036854775808 is more"]),
    ("header_empty", st("", pad=False), ["does not begin with '{'"]),
    # The header's JSON.
    ("header_not_object", st("[1,2]"), ["does not begin with '{'"]),
    ("json_invalid", st('{"x":'), ["not valid JSON"]),
    ("json_trailing", st('{} {}'), ["not valid JSON"]),
    ("json_bad_utf8", st(b'{"\xff":1}'), ["not valid JSON"]),
    ("json_number_overflow", one(shape="[1e999]"), ["not valid JSON"]),
    ("json_deep", st('{"x":{"shape":' + "[" * 500 + "]" * 500 + "}}"),
     [TX, "has the extent an array"]),
    ("duplicate_tensor", st("{" + entry("x") + "," + entry("x", offsets="[4,8]") + "}",
                            b"\0" * 8), [TX, "appears twice"]),
    ("duplicate_field", st('{"x":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}',
                           b"\0" * 4), [TX, "the field 'shape' twice"]),
    ("unknown_field", st('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":0}}',
                         b"\0" * 4), [TX, "unknown field 'extra'"]),
    ("entry_not_object", st('{"x":[1]}'), [TX, "is an array, not an object"]),
    ("missing_dtype", st('{"x":{"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
     [TX, "has no dtype"]),
    ("missing_shape", st('{"x":{"dtype":"F32","data_offsets":[0,4]}}', b"\0" * 4),
     [TX, "has no shape"]),
    ("missing_offsets", st('{"x":{"dtype":"F32","shape":[1]}}', b"\0" * 4),
     [TX, "has no data_offsets"]),
    # dtype.
    ("dtype_unknown", one(dtype='"C64"', offsets="[0,8]", data=b"\0" * 8),
     [TX, "unsupported dtype 'C64'"]),
    ("dtype_not_string", one(dtype="4"), [TX, "has dtype 4, not a string"]),
    # shape.
    ("shape_not_array", one(shape="1"), [TX, "has shape 1, not an array"]),
    ("extent_string", one(shape='["1"]'), [TX, "extent the string '1'"]),
    ("extent_negative", one(shape="[-1]"), [TX, "extent -1"]),
    ("extent_fraction", one(shape="[1.5]"), [TX, "extent 1.5"]),
    ("extent_float_integer", one(shape="[1.0]"), [TX, "extent 1.0"]),
    ("extent_bool", one(shape="[true]"), [TX, "extent true"]),
    ("extent_null", one(shape="[null]"), [TX, "extent null"]),
    ("extent_u64_max", one(shape="[18446744073709551615]"), [TX, "too large to address"]),
    ("numel_overflow", one(shape="[4294967296,4294967296]"), [TX, "too many elements"]),
    ("numel_overflow_behind_zero", one(shape="[0,4294967296,4294967296]", offsets="[0,0]",
                                       data=b""), [TX, "too many elements"]),
    ("rank17", one(shape="[" + ",".join(["1"] * 17) + "]"), [TX, "more than 16 dimensions"]),
    # data_offsets.
    ("offsets_not_array", one(offsets='"0,4"'), [TX, "has data_offsets the string '0,4'"]),
    ("offsets_one", one(offsets="[4]"), [TX, "has 1 data_offsets, not two"]),
    ("offsets_three", one(offsets="[0,4,4]"), [TX, "more than two data_offsets"]),
    ("offsets_negative", one(offsets="[-4,0]"), [TX, "offset -4"]),
    ("offsets_fraction", one(offsets="[0,4.0]"), [TX, "offset 4.0"]),
    ("offsets_reversed", one(offsets="[4,0]"), [TX, "[4, 0] that end before they begin"]),
    ("offsets_beyond_data", one(offsets="[0,4]", data=b"\0" * 2),
     [TX, "beyond the 2 bytes of data"]),
    ("offsets_wrong_size", one(shape="[2]", offsets="[0,4]"), [TX, "needs 8 bytes", "hold 4"]),
    ("offsets_huge", one(offsets="[18446744073709551612,18446744073709551615]"),
     [TX, "beyond the 4 bytes"]),
    ("regions_overlap", st("{" + entry("a", shape="[2]", offsets="[0,8]") + "," +
                           entry("x", offsets="[4,8]") + "}", b"\0" * 8),
     [TX, "overlap those of tensor 'a'"]),
    ("region_hole", st("{" + entry("a") + "," + entry("x", offsets="[8,12]") + "}", b"\0" * 12),
     ["bytes [4, 8)", "hole before " + TX]),
    ("region_trailing", one(data=b"\0" * 8), ["bytes [4, 8)", "nothing after the last tensor"]),
    # __metadata__.
    ("metadata_not_object", st('{"__metadata__":"pt"}'), ["'__metadata__' is the string 'pt'"]),
    ("metadata_not_string", st('{"__metadata__":{"epoch":3}}'), ["maps 'epoch' to 3"]),
    ("metadata_duplicate_key", st('{"__metadata__":{"a":"1","a":"2"}}'),
     ["'__metadata__' has the key 'a' twice"]),
    ("metadata_twice", st('{"__metadata__":{},"__metadata__":{}}'),
     ["'__metadata__' appears twice"]),
    ("tensor_named_metadata", st('{"__metadata__":{"dtype":"F32","shape":[1],'
                                 '"data_offsets":[0,4]}}', b"\0" * 4),
     ["'__metadata__' maps 'shape' to an array"]),
    ("name_escape_sequence", st('{"\\u001b[2J":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}',
                                b"\0" * 8), ["tensor '\\x1b[2J'", "unsupported dtype"]),
    # Found by scripts/fuzz_safetensors.sh against the reader before hardening (UBSan: an offset
    # beyond 2^64, a double to nlohmann, cast to uint64_t by get<>). numel_overflow above, a
    # seed, crashed that reader too (UBSan: signed overflow in shape_product).
    ("fuzz_offset_beyond_u64",
     b'`\x00\x00\x00\x00\x00\x00\x00{"x":{"dtype":"F32","shape":[1],"data_offsets":'
     b'[184467442073709551612,18446744073709551615]}}    \x00\x00\x00\x00',
     [TX, "has the offset 184467442073709551612 in data_offsets"]),
]


def main():
    os.makedirs(CORPUS, exist_ok=True)
    for old in os.listdir(CORPUS):
        os.remove(os.path.join(CORPUS, old))
    lines = ["# Written by make_corpus.py: file, then what its reel::Error must say (or OK)."]
    for name, data, expect in CASES:
        assert len(data) <= 4096, name
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
        lines.append("\t".join([name] + (["OK"] if expect == "OK" else expect)))
    with open(MANIFEST, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%d files in %s" % (len(CASES), CORPUS))


if __name__ == "__main__":
    main()
