CREATE TABLE `history_buckets` (
	`source` text NOT NULL,
	`bucket` integer NOT NULL,
	`resolution` text NOT NULL,
	`period_start` text NOT NULL,
	`points` blob NOT NULL,
	`count` integer NOT NULL,
	PRIMARY KEY(`source`, `bucket`, `resolution`, `period_start`)
);
--> statement-breakpoint
CREATE INDEX `history_period_idx` ON `history_buckets` (`resolution`,`period_start`);--> statement-breakpoint
CREATE TABLE `quote_buckets` (
	`source` text NOT NULL,
	`bucket` integer NOT NULL,
	`quotes` text NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`source`, `bucket`)
);
--> statement-breakpoint
CREATE TABLE `read_model` (
	`id` integer PRIMARY KEY NOT NULL,
	`claimed` integer NOT NULL,
	`version` integer NOT NULL,
	`key` text,
	`assets` integer NOT NULL,
	`built_at` text
);
--> statement-breakpoint
INSERT INTO `read_model` (`id`, `claimed`, `version`, `key`, `assets`, `built_at`) VALUES (1, 0, 0, NULL, 0, NULL);
--> statement-breakpoint
DROP TABLE `asset_listing`;--> statement-breakpoint
DROP TABLE `listing_totals`;--> statement-breakpoint
DROP INDEX `history_asset_idx`;--> statement-breakpoint
DROP INDEX `history_resolution_idx`;--> statement-breakpoint
DROP INDEX `quotes_asset_idx`;--> statement-breakpoint
-- Kept until the worker has packed them into quote_buckets and history_buckets (src/db/legacy.ts), then dropped.
ALTER TABLE `quote_history` RENAME TO `legacy_quote_history`;--> statement-breakpoint
ALTER TABLE `source_quotes` RENAME TO `legacy_source_quotes`;--> statement-breakpoint
DROP INDEX `runs_status_idx`;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_d1_rows_read` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_d1_rows_written` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_r2_reads` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_r2_writes` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_kv_reads` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_kv_writes` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `ingestion_runs` ADD `usage_queue_messages` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `asset_mappings` ADD `slot` integer NOT NULL DEFAULT -1;--> statement-breakpoint
-- Existing ids take slots in the order they were first mapped.
UPDATE `asset_mappings` SET `slot` = r.n FROM (
  SELECT `source` AS s, `source_id` AS i, ROW_NUMBER() OVER (PARTITION BY `source` ORDER BY `created_at`, `source_id`) - 1 AS n FROM `asset_mappings`
) r WHERE `asset_mappings`.`source` = r.s AND `asset_mappings`.`source_id` = r.i;--> statement-breakpoint
CREATE UNIQUE INDEX `mappings_slot_idx` ON `asset_mappings` (`source`,`slot`);--> statement-breakpoint
ALTER TABLE `raw_payloads` ADD `digest` text;--> statement-breakpoint
CREATE INDEX `raw_digest_idx` ON `raw_payloads` (`source`,`digest`);--> statement-breakpoint
-- Small key-value tables written on every page: WITHOUT ROWID stores each row once, in its key's
-- B-tree, so an insert or delete is one row written instead of two (table + primary-key index).
CREATE TABLE `run_parts_new` (
	`run_id` text NOT NULL,
	`part` text NOT NULL,
	`fetched` integer NOT NULL,
	`accepted` integer NOT NULL,
	`rejected` integer NOT NULL,
	`written` integer NOT NULL,
	`finished_at` text NOT NULL,
	`raw_id` text,
	`usage_d1_rows_read` integer DEFAULT 0 NOT NULL,
	`usage_d1_rows_written` integer DEFAULT 0 NOT NULL,
	`usage_r2_reads` integer DEFAULT 0 NOT NULL,
	`usage_r2_writes` integer DEFAULT 0 NOT NULL,
	`usage_kv_reads` integer DEFAULT 0 NOT NULL,
	`usage_kv_writes` integer DEFAULT 0 NOT NULL,
	`usage_queue_messages` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`run_id`, `part`)
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `run_parts_new` (`run_id`, `part`, `fetched`, `accepted`, `rejected`, `written`, `finished_at`)
  SELECT `run_id`, `part`, `fetched`, `accepted`, `rejected`, `written`, `finished_at` FROM `run_parts`;--> statement-breakpoint
DROP TABLE `run_parts`;--> statement-breakpoint
ALTER TABLE `run_parts_new` RENAME TO `run_parts`;--> statement-breakpoint
CREATE TABLE `leases_new` (
	`name` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `leases_new` SELECT `name`, `holder`, `expires_at` FROM `leases`;--> statement-breakpoint
DROP TABLE `leases`;--> statement-breakpoint
ALTER TABLE `leases_new` RENAME TO `leases`;--> statement-breakpoint
CREATE TABLE `request_budgets_new` (
	`source` text PRIMARY KEY NOT NULL,
	`next_at` integer NOT NULL
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `request_budgets_new` SELECT `source`, `next_at` FROM `request_budgets`;--> statement-breakpoint
DROP TABLE `request_budgets`;--> statement-breakpoint
ALTER TABLE `request_budgets_new` RENAME TO `request_budgets`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `symbol`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `name`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `rank`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `price_usd`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `market_cap_usd`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `volume_24h_usd`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `change_24h_pct`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `spread_pct`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `sources`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `source_ids`;--> statement-breakpoint
ALTER TABLE `assets` DROP COLUMN `updated_at`;