#!/usr/bin/env bash
# Fills CACHE_DIR (default: $REEL_MEDIA_CACHE, else ~/.cache/reel-media) with the media the data
# tests and bench_data read: real videos and digits from Debian's opencv-doc and python3-imageio
# (apt-get download + dpkg-deb -x, never installed), and files made here with ffmpeg in several
# codecs and containers, plus broken ones. Does nothing for files already there.
# Usage: scripts/fetch_test_media.sh [CACHE_DIR]
set -euo pipefail

cache=${1:-${REEL_MEDIA_CACHE:-$HOME/.cache/reel-media}}
mkdir -p "$cache"
cd "$cache"

# A stamp per step: an interrupted run redoes only what it had not finished.
real_files=(realshort.mp4 cockatoo.mp4 vtest.avi Megamind.avi Megamind_bugy.avi tree.avi digits.png)
need_fetch=0
for f in "${real_files[@]}"; do [[ -s $f ]] || need_fetch=1; done
if ((need_fetch)); then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  download() { (cd "$tmp" && apt-get download opencv-doc python3-imageio >/dev/null 2>&1); }
  # A machine whose package lists were never fetched knows no package: update once, as root.
  download || { [[ $(id -u) -eq 0 ]] && apt-get update >/dev/null 2>&1 && download; } || {
    echo "fetch_test_media: apt-get download opencv-doc python3-imageio failed" >&2
    echo "  (run 'apt-get update' first, or set REEL_MEDIA_CACHE to a folder with the files)" >&2
    exit 1
  }
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  for f in "${real_files[@]}"; do
    src=$(find "$tmp/x" \( -name "$f" -o -name "$f.gz" \) \
      \( -path '*opencv-doc/examples/data/*' -o -path '*imageio/resources/images/*' \) | head -n 1)
    if [[ -z $src ]]; then
      echo "fetch_test_media: $f not found in the packages" >&2
      exit 1
    fi
    if [[ $src == *.gz ]]; then gzip -dc "$src" >"$f.part"; else cp "$src" "$f.part"; fi
    mv "$f.part" "$f"
  done
fi

command -v ffmpeg >/dev/null || { echo "fetch_test_media: ffmpeg is not installed" >&2; exit 1; }
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# One synthetic source for every made file: 32 frames of 160x120 at 25 fps.
src=(-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 32)
# make_ff OUT ffmpeg-args...: writes OUT through a temporary name, unless it is there.
make_ff() {
  local out=$1
  shift
  [[ -e $out ]] || { ff "$@" "tmp_$out" && mv "tmp_$out" "$out"; }
}

make_ff made_mjpeg.avi "${src[@]}" -c:v mjpeg -q:v 3 -pix_fmt yuvj420p
make_ff made_mpeg4.avi "${src[@]}" -c:v mpeg4 -vtag xvid -q:v 3
make_ff made_xvid.avi "${src[@]}" -c:v libxvid -q:v 3
make_ff made_h264.mkv "${src[@]}" -c:v libx264 -preset veryfast -pix_fmt yuv420p
make_ff made_h264.mp4 "${src[@]}" -c:v libx264 -preset veryfast -pix_fmt yuv420p \
  -movflags +faststart
make_ff made_vp9.webm "${src[@]}" -c:v libvpx-vp9 -deadline realtime -b:v 500k
# Lossless RGB: decodes to exactly the frames of frames_png/.
make_ff made_ffv1.mkv "${src[@]}" -c:v ffv1 -pix_fmt bgr0
# A 3-frame clip, shorter than any T the tests use.
make_ff made_short3.avi -f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 3 -c:v mjpeg
# The same frames as images, in name order.
if [[ ! -d frames_png ]]; then
  rm -rf tmp_frames_png && mkdir tmp_frames_png
  ff "${src[@]}" tmp_frames_png/frame_%03d.png
  mv tmp_frames_png frames_png
fi
if [[ ! -d frames_jpg ]]; then
  rm -rf tmp_frames_jpg && mkdir tmp_frames_jpg
  ff "${src[@]}" -q:v 2 tmp_frames_jpg/%d.jpg
  mv tmp_frames_jpg frames_jpg
fi

# Broken files.
if [[ ! -e bad_truncated.mp4 ]]; then
  # faststart: the index survives at the front, so the header still promises 32 frames.
  size=$(stat -c %s made_h264.mp4)
  head -c $((size / 2)) made_h264.mp4 >tmp_trunc && mv tmp_trunc bad_truncated.mp4
fi
if [[ ! -e bad_truncated.avi ]]; then
  size=$(stat -c %s made_mjpeg.avi)
  head -c $((size / 2)) made_mjpeg.avi >tmp_trunc && mv tmp_trunc bad_truncated.avi
fi
if [[ ! -e bad_random.mp4 ]]; then
  # Fixed bytes (seeded), so that every run sees the same garbage.
  LC_ALL=C awk 'BEGIN { srand(7); for (i = 0; i < 65536; i++) printf "%c", 1+int(rand()*255) }' \
    >tmp_rand && mv tmp_rand bad_random.mp4
fi
[[ -e bad_empty.avi ]] || : >bad_empty.avi
# A container with a video stream that holds no frame (FFmpeg cannot even open it).
make_ff bad_zero_frames.mp4 -f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 0 -c:v libx264
# Headers only: the AVI cut just after its 'movi' tag opens, states 32 frames and decodes none.
if [[ ! -e bad_headers_only.avi ]]; then
  movi=$(LC_ALL=C grep -obUa movi made_mjpeg.avi | head -n 1 | cut -d: -f1)
  head -c $((movi + 4)) made_mjpeg.avi >tmp_hdr && mv tmp_hdr bad_headers_only.avi
fi
echo "fetch_test_media: media ready in $cache"
