#!/usr/bin/env bash
# Does CycleGAN photo -> X-ray augmentation (paper 1, section 4.2) help when labelled
# X-ray images are few? Prints the val mIoU of the same small segmentation model trained on
#   (a) 30 labelled X-ray images,
#   (b) the same plus 150 photos translated into X-ray style by a CycleGAN,
#   (c) the same plus the 150 photos untranslated (control: is it the translation that helps?),
# all evaluated on the same 60 X-ray val images. Figures and timings: docs/cyclegan.md.
#
# Usage: scripts/measure_cyclegan.sh [OUT_DIR]      (default runs/measure_cyclegan; replaced)
# Environment: XRAY_SEG (command, default xray-seg), GAN_EPOCHS, SEG_EPOCHS, SEG_STEPS, SEG_SEED;
# SEG_ONLY=1 keeps OUT_DIR's data, CycleGAN and VOC folder and reruns only step 4 (new run names).
set -euo pipefail
OUT=${1:-runs/measure_cyclegan}
XRAY_SEG=${XRAY_SEG:-xray-seg}
GAN_EPOCHS=${GAN_EPOCHS:-15}
SEG_EPOCHS=${SEG_EPOCHS:-24}
SEG_STEPS=${SEG_STEPS:-10}
SEG_SEED=${SEG_SEED:-0}
SIZE=128
TAG=${SEG_EPOCHS}x${SEG_STEPS}
[ "$SEG_SEED" = 0 ] || TAG=${TAG}_seed$SEG_SEED
TIMES="$OUT/times_$TAG.txt"
stage() { local name=$1; shift; local t0; t0=$(date +%s); echo "== $name: $*"; "$@"; echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$TIMES"; }

if [ -z "${SEG_ONLY:-}" ]; then
rm -rf "$OUT"; mkdir -p "$OUT"; : > "$TIMES"
# 1. data: photos (seed 1) and unlabelled X-ray scans (seed 2) for the CycleGAN; labelled X-ray
#    images (seed 0) for segmentation: 30 train, 60 val. Three seeds: no scene appears twice.
stage synth_photo $XRAY_SEG synth "$OUT/photo" --style photo --seed 1 --num 150 --threat-prob 1 --size $SIZE --workers 1 --quiet
stage synth_xray_unlabelled $XRAY_SEG synth "$OUT/xray_unlabelled" --seed 2 --num 150 --size $SIZE --workers 1 --quiet
stage synth_xray_labelled $XRAY_SEG synth "$OUT/xray_labelled" --seed 0 --num 90 --threat-prob 1 --size $SIZE --workers 1 --quiet

# 2. CycleGAN: unpaired photos (A) and X-ray scans (B), tiny widths for a CPU
stage cyclegan_train $XRAY_SEG cyclegan train --a "$OUT/photo" --b "$OUT/xray_unlabelled" --run-dir "$OUT/cyclegan" \
    --size $SIZE --ngf 8 --ndf 16 --blocks 4 --epochs "$GAN_EPOCHS" --quiet
stage cyclegan_translate $XRAY_SEG cyclegan translate --run-dir "$OUT/cyclegan" --labelme-dir "$OUT/photo" \
    --out "$OUT/photo2xray" --quiet

# 3. VOC: the labelled X-ray set split 30 / 60; translated and raw photos all in train
LABELS="$OUT/xray_labelled/labels.txt"
stage convert_xray $XRAY_SEG convert "$OUT/xray_labelled" "$OUT/voc" --labels "$LABELS" --val-ratio 0.6667 --workers 1 --quiet
stage convert_translated $XRAY_SEG convert "$OUT/photo2xray" "$OUT/voc_translated" --labels "$LABELS" --val-ratio 0 --workers 1 --quiet
stage convert_photo $XRAY_SEG convert "$OUT/photo" "$OUT/voc_photo" --labels "$LABELS" --val-ratio 0 --workers 1 --quiet
SETS="$OUT/voc/ImageSets/Segmentation"
cp "$OUT"/voc_translated/JPEGImages/* "$OUT/voc/JPEGImages/"
cp "$OUT"/voc_translated/SegmentationClass/* "$OUT/voc/SegmentationClass/"
cat "$SETS/train.txt" "$OUT/voc_translated/ImageSets/Segmentation/train.txt" > "$SETS/train_translated.txt"
# raw photos share their stems with the translated ones: copy them under a raw_ prefix
for f in "$OUT"/voc_photo/JPEGImages/*; do cp "$f" "$OUT/voc/JPEGImages/raw_$(basename "$f")"; done
for f in "$OUT"/voc_photo/SegmentationClass/*; do cp "$f" "$OUT/voc/SegmentationClass/raw_$(basename "$f")"; done
{ cat "$SETS/train.txt"; sed 's/^/raw_/' "$OUT/voc_photo/ImageSets/Segmentation/train.txt"; } > "$SETS/train_raw_photo.txt"
wc -l "$SETS"/*.txt
else
    [ -d "$OUT/voc" ] || { echo "SEG_ONLY needs a finished $OUT (run without SEG_ONLY first)" >&2; exit 2; }
    : > "$TIMES"
fi

# 4. segmentation: demo_cpu at 128 px, the same number of steps for every arm, validated once at the end
for arm in a:train b:train_translated c:train_raw_photo; do
    name=${arm%%:*}; split=${arm#*:}
    stage "seg_train_$name" $XRAY_SEG train "$OUT/voc" --preset demo_cpu --run-dir "$OUT/seg_${name}_$TAG" --epochs "$SEG_EPOCHS" \
        --set "data.image_size=[$SIZE,$SIZE]" --set data.train_split=$split --set steps_per_epoch=$SEG_STEPS \
        --set val_every=$SEG_EPOCHS --set seed=$SEG_SEED --quiet
    stage "seg_eval_$name" $XRAY_SEG evaluate "$OUT/seg_${name}_$TAG" "$OUT/voc" --split val --out "$OUT/eval_${name}_$TAG"
done

echo "== val mIoU (60 X-ray images), $SEG_EPOCHS epochs x $SEG_STEPS steps"
for name in a b c; do
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], 'mIoU %.4f' % m['miou'], 'mPA %.4f' % m['mpa'], 'PA %.4f' % m['pa'])" \
        "$OUT/eval_${name}_$TAG/metrics.json" "$name"
done
cat "$TIMES"
