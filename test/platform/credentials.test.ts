import { describe, expect, it } from 'vitest';
import { CredentialError, credentialProviderFromSource, parseCredentialSecret, staticCredentialProvider, staticSecretSource } from '../../src/platform/credentials.ts';
import { formatLine } from '../../src/platform/log.ts';
import '../helpers/log-capture.ts';

function malformed(value: string): CredentialError {
  try {
    parseCredentialSecret(value);
  } catch (error) {
    if (error instanceof CredentialError) return error;
    throw error;
  }
  throw new Error('expected a CredentialError');
}

describe('parseCredentialSecret', () => {
  it('reads {"username","password"} JSON', () => {
    expect(parseCredentialSecret('{"username":"admin","password":"p:w{}"}')).toEqual({ username: 'admin', password: 'p:w{}' });
  });

  it('reads user:password, splitting at the first colon so passwords may contain colons', () => {
    expect(parseCredentialSecret('admin:pa:ss:word\n')).toEqual({ username: 'admin', password: 'pa:ss:word' });
  });

  it.each([
    ['{"username":"admin","password":"hunter2-secret"', 'not valid JSON'],
    ['{"username":"admin"}', 'password'],
    ['{"username":"","password":"hunter2-secret"}', 'username'],
    ['{"username":"admin","password":42}', 'password'],
    ['hunter2-secret', 'user:password'],
    [':hunter2-secret', 'empty username'],
    ['admin:', 'empty password'],
  ])('rejects %j naming the problem (%s) but not the value', (value, problem) => {
    // Act
    const error = malformed(value);
    // Assess
    expect(error.code).toBe('SECRET_MALFORMED');
    expect(error.message).toContain(problem);
    expect([error, JSON.stringify(error)]).toContainNoSecret(['hunter2-secret', 'admin']);
  });
});

describe('static credentials and secrets', () => {
  it('static credentials are returned as given and registered for redaction', async () => {
    // Prepare
    const provider = staticCredentialProvider({ username: 'u', password: 'static-password-1' });
    // Act
    const creds = await provider.get();
    provider.invalidate();
    // Assess
    expect(creds).toEqual({ username: 'u', password: 'static-password-1' });
    expect(formatLine('info', 'm', { note: 'x static-password-1 y' })).not.toContain('static-password-1');
  });

  it('a credential provider over a secret source names the secret when the value is malformed', async () => {
    // Prepare
    const provider = credentialProviderFromSource(staticSecretSource({ cc: 'no-colon-here' }), 'cc');
    // Act
    const error = await provider.get().catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(CredentialError);
    expect((error as CredentialError).message).toContain('secret "cc"');
    expect([error]).toContainNoSecret(['no-colon-here']);
  });

  it('a static secret source reports a missing name as SECRET_NOT_FOUND', async () => {
    // Act
    const error = await staticSecretSource({})
      .getSecret('hmac')
      .catch((e: unknown) => e);
    // Assess
    expect((error as CredentialError).code).toBe('SECRET_NOT_FOUND');
    expect((error as CredentialError).secretName).toBe('hmac');
  });
});
