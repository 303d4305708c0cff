"""Reference point: the Python generator feedgen writing a 50-item feed as RSS and Atom, with the
same article shape as benches/publish.rs. usage: python feedgen_reference.py (needs `pip install feedgen`)."""
import datetime
import time

from feedgen.feed import FeedGenerator


def text(i):
    t = f"SURABAYA (Suarapubliknews) – Pemerintah kota mengumumkan program nomor {i} untuk warga. Program ini diharapkan mempercepat pelayanan publik di seluruh kecamatan.\n"
    for p in range(7):
        t += f"Paragraf {p} dari berita {i} menjelaskan “rincian” kebijakan, anggaran, jadwal pelaksanaan dan tanggapan warga yang menyambut baik langkah tersebut & berharap hasilnya segera terasa.\n"
    return t


def build():
    fg = FeedGenerator()
    fg.id("https://news.example.org/feeds/all.atom")
    fg.title("Suara Publik")
    fg.author({"name": "Redaksi"})
    fg.link(href="https://news.example.org/", rel="alternate")
    fg.link(href="https://news.example.org/feeds/all.atom", rel="self")
    fg.description("Berita")
    fg.language("id")
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    for i in range(50):
        fe = fg.add_entry()
        fe.id(f"tag:news.example.org,2026-01-01:berita-{i}")
        fe.title(f"Pemerintah kota mengumumkan program nomor {i} untuk warga")
        fe.link(href=f"https://news.example.org/berita/berita-{i}")
        fe.author({"name": "q cox"})
        fe.summary(text(i).split("\n")[0])
        fe.content("".join(f"<p>{p}</p>" for p in text(i).split("\n") if p), type="html")
        fe.published(base + datetime.timedelta(seconds=37 * i))
        fe.updated(base + datetime.timedelta(seconds=37 * i))
    fg.rss_str(pretty=True)
    fg.atom_str(pretty=True)


for _ in range(20):
    build()
n = 200
start = time.perf_counter()
for _ in range(n):
    build()
print(f"feedgen: {(time.perf_counter() - start) / n * 1000:.3f} ms per 50-item feed (RSS + Atom)")
