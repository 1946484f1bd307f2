-- Registrable domains by the Public Suffix List (lua/mod_http_upload_s3/publicsuffix.lib.lua).
local publicsuffix = module:require "publicsuffix";

-- A few rules of each kind, as the list writes them.
local RULES = [[
// ===BEGIN ICANN DOMAINS===
com
org
uk
co.uk
// wildcards and their exceptions
*.ck
!www.ck
jp
*.kobe.jp
!city.kobe.jp
// private section
s3.eu-west-2.amazonaws.com
]];

describe("publicsuffix", function ()
	local list = publicsuffix.new(RULES);

	it("takes the longest matching rule, and one label more", function ()
		assert.equal("example.org", list:registrable("upload.example.org"));
		assert.equal("example.org", list:registrable("Example.ORG."));
		assert.equal("example.co.uk", list:registrable("files.example.co.uk"));
		assert.equal("bucket.s3.eu-west-2.amazonaws.com", list:registrable("bucket.s3.eu-west-2.amazonaws.com"));
		assert.equal("amazonaws.com", list:registrable("s3.amazonaws.com"));
	end);

	it("follows wildcards and their exceptions", function ()
		assert.equal("shop.gov.ck", list:registrable("a.shop.gov.ck"));
		assert.equal("www.ck", list:registrable("www.ck"));
		assert.equal("www.ck", list:registrable("a.www.ck"));
		assert.equal("x.y.kobe.jp", list:registrable("w.x.y.kobe.jp"));
		assert.equal("city.kobe.jp", list:registrable("a.city.kobe.jp"));
	end);

	it("has no registrable domain for a suffix, and treats unknown labels as suffixes", function ()
		assert.is_nil(list:registrable("co.uk"));
		assert.is_nil(list:registrable("gov.ck"));
		assert.equal("example.test", list:registrable("a.b.example.test"));
		assert.equal("example.test", publicsuffix.new(nil):registrable("chat.example.test"));
	end);

	it("takes IP addresses as sites of their own", function ()
		assert.equal("127.0.0.1", list:registrable("127.0.0.1"));
		assert.equal("[::1]", list:registrable("[::1]"));
	end);
end);
