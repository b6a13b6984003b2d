import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ConfigError, loadConfig } from '#config';
import { configureGateway, gatewayAdapter } from './gateway.app.js';
import { GatewayModule } from './gateway.module.js';

async function bootstrap(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  const app = await NestFactory.create<NestFastifyApplication>(
    GatewayModule.forRoot(config),
    gatewayAdapter(config),
    {
      bodyParser: false,
    },
  );
  configureGateway(app, config);
  await app.listen(config.port, '0.0.0.0');
  console.log(`gateway listening on http://localhost:${config.port}`);
}

void bootstrap();
