CREATE TABLE `mapping_moves` (
	`id` integer PRIMARY KEY NOT NULL,
	`source` text NOT NULL,
	`source_id` text NOT NULL,
	`from_uid` text NOT NULL,
	`to_uid` text NOT NULL,
	`rule` text NOT NULL,
	`evidence` text,
	`moved_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `moves_from_idx` ON `mapping_moves` (`from_uid`);--> statement-breakpoint
CREATE INDEX `moves_to_idx` ON `mapping_moves` (`to_uid`);