-- Every paid output kept: an output may be an image, and a watermarked copy (when the request
-- asked for one) is stored beside the clean file, on the same row. The same columns as the
-- SQLite migration 0006.
ALTER TABLE videos
    ADD COLUMN kind text NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'image')),
    ADD COLUMN watermark_url text,
    ADD COLUMN watermark_path text,
    ADD COLUMN watermark_size bigint,
    ADD COLUMN watermark_sha256 text;
