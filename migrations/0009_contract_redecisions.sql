CREATE TABLE `contract_redecisions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`source` text NOT NULL,
	`ids` text NOT NULL
);
