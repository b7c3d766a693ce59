CREATE TABLE `fx_history` (
	`source` text NOT NULL,
	`resolution` text NOT NULL,
	`period_start` text NOT NULL,
	`points` text NOT NULL,
	`rev` integer NOT NULL,
	PRIMARY KEY(`source`, `resolution`, `period_start`)
);
--> statement-breakpoint
CREATE TABLE `fx_rates` (
	`source` text PRIMARY KEY NOT NULL,
	`rates` text NOT NULL,
	`fetched_at` text NOT NULL,
	`rev` integer NOT NULL
);
