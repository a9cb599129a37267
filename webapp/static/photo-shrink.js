// Photos are made smaller on the phone before they travel: longest side MAX_SIDE pixels,
// re-encoded as JPEG at QUALITY. At 2000 px an A4 quote photographed whole is about 170 pixels
// per inch, and quality 0.82 keeps small print sharp (tests/e2e/test_phone_offline.py checks a
// 4000x3000 photo). PDFs, and anything the browser cannot decode (HEIC on Chrome), travel as
// they are: the server accepts them and the 10 MB limit still applies.
export const MAX_SIDE = 2000;
export const QUALITY = 0.82;

const PHOTO = /^image\/(jpeg|png|webp|heic|heif)$/;

async function decode(file) {
  if ("createImageBitmap" in window) {
    try { return await createImageBitmap(file, { imageOrientation: "from-image" }); }
    catch (error) { /* older Safari: no options; fall through to an <img> */ }
  }
  const url = URL.createObjectURL(file);
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    return image;
  } finally { URL.revokeObjectURL(url); }
}

function encode(source, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";  // a transparent PNG gets white paper, not black
  context.fillRect(0, 0, width, height);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(source, 0, 0, width, height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
}

// {blob, name, type, width, height, before}: the file to upload and what it was.
export async function shrink(file) {
  const kept = { blob: file, name: file.name, type: file.type, before: file.size };
  if (!PHOTO.test(file.type)) return kept;
  let source;
  try { source = await decode(file); } catch (error) { return kept; }
  const width = source.naturalWidth || source.width;
  const height = source.naturalHeight || source.height;
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
  const size = [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
  const blob = await encode(source, size[0], size[1]);
  if (source.close) source.close();
  if (!blob || (scale === 1 && blob.size >= file.size)) return kept;  // already small enough
  const name = file.name.replace(/\.(jpe?g|png|webp|heic|heif)$/i, "") + ".jpg";
  return { blob, name, type: "image/jpeg", width: size[0], height: size[1], before: file.size };
}
