CREATE TABLE `contract_redecisions` (
	`source` text PRIMARY KEY NOT NULL,
	`ids` text NOT NULL
);
