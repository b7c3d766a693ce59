DROP INDEX `assets_symbol_idx`;--> statement-breakpoint
DROP INDEX `dead_letters_received_idx`;