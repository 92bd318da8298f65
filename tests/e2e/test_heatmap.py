"""End-to-end: `attn-client heatmap` against a real attnserve writes PNG and SVG attention maps
(PNG decoded here with zlib: signature, IHDR, the colours of the cells; SVG parsed as XML: one
rect per cell, the token labels, the causal mask's empty upper triangle), and bad usage exits 2.
"""
import os
import struct
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

from attnserve_process import AttnServe, run_client

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
DARKEST = (68, 1, 84)       # the colour of 0
BRIGHTEST = (253, 231, 37)  # the colour of the map's largest value
WORDS = "the,cat,sat,on,the,mat,and,then,it,saw,a,dog,run,far,away,fast".split(",")


def png_rgb_rows(data):
    """(width, height, rows of RGB bytes) of an 8-bit RGB, non-interlaced PNG."""
    assert data[:8] == PNG_SIGNATURE
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour_type, _, _, interlace = header
    assert (depth, colour_type, interlace) == (8, 2, 0), header
    raw, stride, rows, prev = zlib.decompress(idat), width * 3, [], bytearray(width * 3)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b, c = prev[x], prev[x - 3] if x >= 3 else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, rows


def colours(rows):
    return {tuple(row[i:i + 3]) for row in rows for i in range(0, len(row), 3)}


class HeatmapTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe()
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls.dir.cleanup()

    def heatmap(self, name, *args):
        path = os.path.join(self.dir.name, name)
        result = run_client(self.server.address, "heatmap", f"--out={path}", *args)
        return result, path

    def svg(self, name, *args):
        result, path = self.heatmap(name, *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        root = ET.parse(path).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        cells = [r for r in root.iter(SVG + "rect") if r.get("class") == "cell"]
        texts = {}
        for text in root.iter(SVG + "text"):
            texts.setdefault(text.get("class"), []).append(text.text)
        return cells, texts

    def test_demo_png_has_the_map_colours(self):
        result, path = self.heatmap("demo.png")
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], PNG_SIGNATURE)
        self.assertEqual(data[12:16], b"IHDR")
        width, height = struct.unpack(">II", data[16:24])
        self.assertGreaterEqual(width, 3 * 56)   # three 56-pixel cells and the labels
        self.assertGreaterEqual(height, 3 * 56)
        decoded_width, decoded_height, rows = png_rgb_rows(data)
        self.assertEqual((decoded_width, decoded_height), (width, height))
        seen = colours(rows)
        self.assertIn(BRIGHTEST, seen)           # "am" attending to "am", the largest value
        self.assertIn((255, 255, 255), seen)     # the background
        self.assertGreater(len(seen), 20)        # cells, legend and text: not blank

    def test_demo_svg_has_a_rect_per_cell_and_the_tokens(self):
        cells, texts = self.svg("demo.svg")
        self.assertEqual(len(cells), 9)
        self.assertEqual(texts["label"], ["I", "am", "good"] * 2)  # query rows, key columns
        self.assertEqual(texts["axis"], ["keys", "queries"])
        values = [float(t) for t in texts["value"]]  # each cell's probability; rows sum to 1
        self.assertEqual(len(values), 9)
        for row in range(3):
            self.assertAlmostEqual(sum(values[3 * row:3 * row + 3]), 1.0, delta=0.02)
        top, bottom = texts["scale"]                 # the colour scale runs from 0 to the max
        self.assertEqual(bottom, "0")
        self.assertAlmostEqual(float(top), max(values), delta=0.006)

    def test_causal_map_with_tokens(self):
        args = ("--shape=1,1,16,16,8", "--causal=upper_left", "--tokens=" + ",".join(WORDS))
        cells, texts = self.svg("causal.svg", *args)
        self.assertEqual(len(cells), 256)
        self.assertEqual(texts["label"], WORDS * 2)
        self.assertEqual(len(texts["value"]), 256)
        dark = "#%02x%02x%02x" % DARKEST
        for i in range(16):   # rows are queries, columns keys: key j > query i is masked
            for j in range(i + 1, 16):
                self.assertEqual(cells[16 * i + j].get("fill"), dark, (i, j))
        self.assertEqual(cells[0].get("fill"), "#%02x%02x%02x" % BRIGHTEST)  # query 0 -> key 0: 1
        result, path = self.heatmap("causal.png", *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(path, "rb") as f:
            seen = colours(png_rgb_rows(f.read())[2])
        self.assertIn(DARKEST, seen)
        self.assertIn(BRIGHTEST, seen)

    def test_average_over_heads_and_default_labels(self):
        cells, texts = self.svg("average.svg", "--shape=1,4,5,7,8", "--average")
        self.assertEqual(len(cells), 35)
        self.assertEqual(texts["title"], ["Attention, average of 4 heads"])
        self.assertEqual(texts["label"], [f"q{i}" for i in range(5)] + [f"k{j}" for j in range(7)])

    def test_values_only_in_small_maps(self):
        cells, texts = self.svg("large.svg", "--shape=1,1,17,17,8")
        self.assertEqual(len(cells), 17 * 17)
        self.assertNotIn("value", texts)

    def test_bad_usage_exits_2_without_writing(self):
        cases = [("--head=1",), ("--head=-1",), ("--shape=1,2,4,4,8", "--head=2"),
                 ("--head=0", "--average"), ("--tokens=a,b",),
                 ("--shape=1,1,4,5,8", "--tokens=a,b,c,d"), ("--causal=sideways",)]
        for number, args in enumerate(cases):
            result, path = self.heatmap(f"bad{number}.png", *args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertFalse(os.path.exists(path), args)
        self.assertIn("--head=1 is out of range: the request has heads 0 to 0",
                      self.heatmap("b.png", "--head=1")[0].stderr)
        self.assertEqual(self.heatmap("map.gif")[0].returncode, 2)
        self.assertEqual(run_client(self.server.address, "heatmap").returncode, 2)


if __name__ == "__main__":
    unittest.main()
