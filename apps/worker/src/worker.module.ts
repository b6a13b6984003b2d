import { Module } from '@nestjs/common';

/** The worker's processors and scheduled jobs arrive with the worker issue; for now it only boots. */
@Module({})
export class WorkerModule {}
