CREATE TABLE `contract_platforms` (
	`source` text NOT NULL,
	`platform` text NOT NULL,
	`chain` text NOT NULL,
	`digest` text,
	`contracts` integer NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`source`, `platform`)
);
--> statement-breakpoint
CREATE TABLE `contract_refreshes` (
	`source` text PRIMARY KEY NOT NULL,
	`run_id` text NOT NULL,
	`finished_at` text NOT NULL,
	`error` text
);
--> statement-breakpoint
CREATE TABLE `source_contracts` (
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`chain` text NOT NULL,
	`address` text NOT NULL,
	`platform` text NOT NULL,
	`active` integer NOT NULL,
	PRIMARY KEY(`source`, `source_id`, `chain`, `address`)
);
--> statement-breakpoint
CREATE INDEX `contracts_address_idx` ON `source_contracts` (`chain`,`address`);