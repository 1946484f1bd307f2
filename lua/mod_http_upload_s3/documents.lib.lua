-- The bucket's three documents as setup and check read and write them:
-- through the S3 client, merged by bucket.lib.lua, with what S3 answers when a
-- bucket has none and the permissions an IAM policy must grant for each.
--
--   documents.LIST: { name, none, merge, scoped, permissions }...
--   documents.changes(cfg, host, client, sharing) -> per document: { doc, merged, changes, warnings },
--     or { doc, unreadable = why } (the service did not give it), or { doc, problem = why } (it cannot
--     be set up as the options ask, and is left as it is)
--   documents.write(client, doc, merged) -> nil | problem   (merged nil: delete the document)

local bucket = module:require "bucket";

-- scoped: its statements or rules reach files, so hosts whose folders contain one another must not write it.
local LIST = {
	{ name = "policy", none = "NoSuchBucketPolicy", merge = bucket.merge_policy, scoped = true,
		permissions = "s3:GetBucketPolicy, s3:PutBucketPolicy, s3:DeleteBucketPolicy" },
	{ name = "cors", none = "NoSuchCORSConfiguration", merge = bucket.merge_cors,
		permissions = "s3:GetBucketCORS, s3:PutBucketCORS" },
	{ name = "lifecycle", none = "NoSuchLifecycleConfiguration", merge = bucket.merge_lifecycle, scoped = true,
		permissions = "s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration" },
};

-- Why S3 refused a request on a document, in words an admin can act on.
local function failure(doc, response)
	if type(response) ~= "table" then
		return tostring(response);   -- it never got an answer
	end
	local code = response.error.code or "";
	local instead = doc.name == "lifecycle" and ", or set http_upload_s3_expire_by = \"module\" for the module "
		.. "to delete files past their retention itself" or "";
	if response.status == 501 or code == "NotImplemented" or code == "MethodNotAllowed" then
		return ("the storage service has no %s API (HTTP %d %s): set this up in its own console%s"):format(
			doc.name, response.status, code, instead);
	elseif code == "AccessDenied" or response.status == 403 then
		return ("AccessDenied: the credentials lack %s on the bucket%s"):format(doc.permissions, instead);
	end
	return ("HTTP %d %s %s"):format(response.status, code, response.error.message or "");
end

local function changes(cfg, host, client, sharing)
	local results = {};
	for _, doc in ipairs(LIST) do
		if doc.scoped and #sharing.problems > 0 then
			table.insert(results, { doc = doc, problem = table.concat(sharing.problems, "; ") });
		else
			local current, response = client:document(doc.name, doc.none);
			if current == nil then
				table.insert(results, { doc = doc, unreadable = failure(doc, response) });
			else
				local merged, list, warnings, problem = doc.merge(cfg, host, current or nil);
				table.insert(results, { doc = doc, merged = merged, changes = list, warnings = warnings,
					problem = problem });
			end
		end
	end
	return results;
end

local function write(client, doc, merged)
	local response, problem;
	if merged == nil then
		response, problem = client:delete_document(doc.name);
	else
		response, problem = client:put_document(doc.name, merged);
	end
	if not response then
		return problem;
	elseif response.status >= 300 then
		return failure(doc, response);
	end
end

return {
	LIST = LIST;
	changes = changes;
	write = write;
};
