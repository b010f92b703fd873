-- Every paid output kept: an output may be an image, and a watermarked copy (when the request
-- asked for one) is stored beside the clean file, on the same row. The same columns as the
-- PostgreSQL migration 0005.
ALTER TABLE videos ADD COLUMN kind TEXT NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'image'));
ALTER TABLE videos ADD COLUMN watermark_url TEXT;
ALTER TABLE videos ADD COLUMN watermark_path TEXT;
ALTER TABLE videos ADD COLUMN watermark_size INTEGER;
ALTER TABLE videos ADD COLUMN watermark_sha256 TEXT;
