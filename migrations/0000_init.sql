CREATE TABLE `ambiguous_matches` (
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`asset_uid` text NOT NULL,
	`candidates` text NOT NULL,
	`reason` text NOT NULL,
	`seen_at` text NOT NULL,
	PRIMARY KEY(`source`, `source_id`)
);
--> statement-breakpoint
CREATE TABLE `asset_aliases` (
	`alias_uid` text PRIMARY KEY NOT NULL,
	`asset_uid` text NOT NULL,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `asset_listing` (
	`scope` text NOT NULL,
	`asset_uid` text NOT NULL,
	`rank_key` integer NOT NULL,
	`market_cap_usd` real,
	`price_usd` real,
	`volume_24h_usd` real,
	`change_24h_pct` real,
	`symbol_key` text NOT NULL,
	`name_key` text NOT NULL,
	PRIMARY KEY(`scope`, `asset_uid`)
);
--> statement-breakpoint
CREATE INDEX `listing_rank_idx` ON `asset_listing` (`scope`,`rank_key`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_market_cap_idx` ON `asset_listing` (`scope`,`market_cap_usd`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_price_idx` ON `asset_listing` (`scope`,`price_usd`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_volume_idx` ON `asset_listing` (`scope`,`volume_24h_usd`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_change_idx` ON `asset_listing` (`scope`,`change_24h_pct`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_symbol_idx` ON `asset_listing` (`scope`,`symbol_key`,`asset_uid`);--> statement-breakpoint
CREATE INDEX `listing_name_idx` ON `asset_listing` (`scope`,`name_key`,`asset_uid`);--> statement-breakpoint
CREATE TABLE `asset_mappings` (
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`asset_uid` text NOT NULL,
	`rule` text NOT NULL,
	`pinned` integer DEFAULT false NOT NULL,
	`symbol_key` text NOT NULL,
	`name_key` text NOT NULL,
	`id_key` text NOT NULL,
	`name` text NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`source`, `source_id`)
);
--> statement-breakpoint
CREATE INDEX `mappings_asset_idx` ON `asset_mappings` (`asset_uid`);--> statement-breakpoint
CREATE INDEX `mappings_symbol_idx` ON `asset_mappings` (`symbol_key`);--> statement-breakpoint
CREATE INDEX `mappings_name_idx` ON `asset_mappings` (`name_key`);--> statement-breakpoint
CREATE INDEX `mappings_id_idx` ON `asset_mappings` (`id_key`);--> statement-breakpoint
CREATE TABLE `assets` (
	`asset_uid` text PRIMARY KEY NOT NULL,
	`symbol` text NOT NULL,
	`name` text NOT NULL,
	`rank` integer,
	`price_usd` real,
	`market_cap_usd` real,
	`volume_24h_usd` real,
	`change_24h_pct` real,
	`spread_pct` real,
	`sources` text DEFAULT '[]' NOT NULL,
	`source_ids` text DEFAULT '{}' NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `assets_symbol_idx` ON `assets` (lower("symbol"));--> statement-breakpoint
CREATE TABLE `dead_letters` (
	`message_id` text PRIMARY KEY NOT NULL,
	`body` text NOT NULL,
	`attempts` integer NOT NULL,
	`received_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dead_letters_received_idx` ON `dead_letters` (`received_at`);--> statement-breakpoint
CREATE TABLE `ingestion_runs` (
	`run_id` text PRIMARY KEY NOT NULL,
	`source` text NOT NULL,
	`trigger` text NOT NULL,
	`status` text NOT NULL,
	`created_at` text NOT NULL,
	`started_at` text,
	`finished_at` text,
	`duration_ms` integer,
	`fetched` integer DEFAULT 0 NOT NULL,
	`accepted` integer DEFAULT 0 NOT NULL,
	`rejected` integer DEFAULT 0 NOT NULL,
	`written` integer DEFAULT 0 NOT NULL,
	`error` text,
	`origin` text DEFAULT 'live' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `runs_created_idx` ON `ingestion_runs` (`created_at`);--> statement-breakpoint
CREATE INDEX `runs_source_idx` ON `ingestion_runs` (`source`,`created_at`);--> statement-breakpoint
CREATE INDEX `runs_status_idx` ON `ingestion_runs` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `runs_source_status_idx` ON `ingestion_runs` (`source`,`status`,`created_at`);--> statement-breakpoint
CREATE TABLE `leases` (
	`name` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `listing_totals` (
	`scope` text PRIMARY KEY NOT NULL,
	`total` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `quote_history` (
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`resolution` text NOT NULL,
	`at` text NOT NULL,
	`asset_uid` text NOT NULL,
	`price_usd` real NOT NULL,
	`market_cap_usd` real,
	`volume_24h_usd` real,
	PRIMARY KEY(`source`, `source_id`, `resolution`, `at`)
);
--> statement-breakpoint
CREATE INDEX `history_asset_idx` ON `quote_history` (`asset_uid`,`at`);--> statement-breakpoint
CREATE INDEX `history_resolution_idx` ON `quote_history` (`resolution`,`at`);--> statement-breakpoint
CREATE TABLE `raw_payloads` (
	`id` text PRIMARY KEY NOT NULL,
	`source` text NOT NULL,
	`run_id` text NOT NULL,
	`key` text NOT NULL,
	`fetched_at` text NOT NULL,
	`bytes` integer NOT NULL,
	`records` integer,
	`content_type` text NOT NULL,
	`origin` text DEFAULT 'live' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `raw_source_idx` ON `raw_payloads` (`source`,`fetched_at`);--> statement-breakpoint
CREATE INDEX `raw_run_idx` ON `raw_payloads` (`run_id`);--> statement-breakpoint
CREATE TABLE `rejected_records` (
	`run_id` text NOT NULL,
	`record_key` text NOT NULL,
	`source` text NOT NULL,
	`row` integer,
	`source_id` text,
	`reason` text NOT NULL,
	`created_at` text NOT NULL,
	PRIMARY KEY(`run_id`, `record_key`)
);
--> statement-breakpoint
CREATE INDEX `rejected_row_idx` ON `rejected_records` (`run_id`,`row`);--> statement-breakpoint
CREATE TABLE `request_budgets` (
	`source` text PRIMARY KEY NOT NULL,
	`next_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `run_parts` (
	`run_id` text NOT NULL,
	`part` text NOT NULL,
	`fetched` integer NOT NULL,
	`accepted` integer NOT NULL,
	`rejected` integer NOT NULL,
	`written` integer NOT NULL,
	`finished_at` text NOT NULL,
	PRIMARY KEY(`run_id`, `part`)
);
--> statement-breakpoint
CREATE TABLE `source_quotes` (
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`asset_uid` text NOT NULL,
	`symbol` text NOT NULL,
	`name` text NOT NULL,
	`rank` integer,
	`price_usd` real NOT NULL,
	`market_cap_usd` real,
	`volume_24h_usd` real,
	`change_24h_pct` real,
	`circulating_supply` real,
	`total_supply` real,
	`max_supply` real,
	`source_updated_at` text NOT NULL,
	`ingested_at` text NOT NULL,
	`run_id` text NOT NULL,
	PRIMARY KEY(`source`, `source_id`)
);
--> statement-breakpoint
CREATE INDEX `quotes_asset_idx` ON `source_quotes` (`asset_uid`);--> statement-breakpoint
CREATE TABLE `uploads` (
	`upload_id` text PRIMARY KEY NOT NULL,
	`key` text NOT NULL,
	`filename` text NOT NULL,
	`bytes` integer NOT NULL,
	`etag` text NOT NULL,
	`run_id` text,
	`status` text NOT NULL,
	`accepted` integer DEFAULT 0 NOT NULL,
	`rejected` integer DEFAULT 0 NOT NULL,
	`byte_offset` integer DEFAULT 0 NOT NULL,
	`rows_done` integer DEFAULT 0 NOT NULL,
	`header` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `uploads_key_idx` ON `uploads` (`key`);--> statement-breakpoint
CREATE INDEX `uploads_etag_idx` ON `uploads` (`filename`,`etag`);