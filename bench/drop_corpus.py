"""Sample-shaped newsroom drops for the benchmarks: N plain-text articles (dateline, 8 paragraphs,
credits; ~1.6 KB each) written into a drop folder as berita-NNNNNN.txt.

usage: python3 bench/drop_corpus.py DIR N [--dated]
  --dated  each article names its own date (Date: header), spread over a year, so a store of
           them has a long history to page into archives
"""
import os
import sys

drop, n = sys.argv[1], int(sys.argv[2])
dated = "--dated" in sys.argv[3:]
os.makedirs(drop)
para = ("Paragraf {p} berita {i} menjelaskan “rincian” kebijakan, anggaran, jadwal pelaksanaan dan "
        "tanggapan warga yang menyambut baik langkah tersebut & berharap hasilnya segera terasa.\n")
for i in range(n):
    text = f"Date: 2026-{1 + i % 11:02}-{1 + i % 28:02} {i % 24:02}:{i % 60:02}\n\n" if dated else ""
    text += (f"SURABAYA (Suarapubliknews) – Pemerintah kota mengumumkan program nomor {i} untuk warga. "
             "Program ini diharapkan mempercepat pelayanan publik.\n")
    text += "".join(para.format(p=p, i=i) for p in range(7))
    text += "Hal tersebut disampaikan di balai kota. (q cox, tama dinie)"
    with open(os.path.join(drop, f"berita-{i:06}.txt"), "w") as f:
        f.write(text)
